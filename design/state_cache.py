"""Per-state memo of a deterministic design's posterior work, shared by every copy of the design in a process.

Model-based designs (BLRM, EffTox, CRM with two parameters) compute each state's
posterior summaries deterministically from the model and the state's counts,
bit for bit whatever the batch, so they memoise them by the counts. A
parallel run sends the designs to each work unit anew (a pickle); a
:class:`StateCache` with a ``key`` (the numbers that define the model) never
carries its data in the pickle: the unpickled copy joins the receiving
process's cache for that key (:func:`process_cache`), so a worker process
computes a state once, not once per work unit. Sharing changes no result.
Without a key, an unpickled copy starts empty.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["StateCache", "process_cache", "PROCESS_CACHE_KEYS"]

#: Keys (models) whose caches a process keeps; the oldest is dropped first (bounded memory in long sessions).
PROCESS_CACHE_KEYS: Final[int] = 8


class StateCache:
    """A dict from a state's counts (bytes) to its memoised result, with a size ``limit`` and an optional ``key``.

    >>> import pickle
    >>> a = StateCache(10, key=("demo", 1))
    >>> pickle.loads(pickle.dumps(a)) is pickle.loads(pickle.dumps(a))
    True
    >>> len(pickle.loads(pickle.dumps(StateCache(10))).data)
    0
    """

    __slots__ = ("data", "limit", "key")

    def __init__(self, limit: int = 200_000, key: Any = None) -> None:
        self.data: dict[bytes, Any] = {}
        self.limit = limit
        self.key = key

    def __reduce__(self) -> tuple[Any, tuple]:
        if self.key is None:
            return (StateCache, (self.limit,))
        return (process_cache, (self.limit, self.key))


_PROCESS_CACHES: dict[Any, StateCache] = {}


def process_cache(limit: int, key: Any) -> StateCache:
    """This process's :class:`StateCache` for ``key`` (created empty on first use)."""
    cache = _PROCESS_CACHES.get(key)
    if cache is None:
        while len(_PROCESS_CACHES) >= PROCESS_CACHE_KEYS:
            _PROCESS_CACHES.pop(next(iter(_PROCESS_CACHES)), None)
        cache = _PROCESS_CACHES.setdefault(key, StateCache(limit, key))
    return cache
