"""Keep freed heap memory in the processes that run work units (glibc ``malloc``).

The engine allocates and frees the same large temporaries once per cohort
(arrays over the trials of a chunk). By default glibc gives the top of the
heap back to the kernel as soon as it is free and takes it again on the next
allocation, and every page taken again is a page fault: at ``chunk_size:
2500`` that was ~1,500 faults per unit and ~12% of its time in the kernel, and
on a virtual machine the faults of concurrent workers slow each other down
(the 1-to-2-worker speed-up fell from ~1.9x to ~1.75x). Asking glibc to keep
a pad of :data:`TOP_PAD` bytes at the top of the heap (``mallopt(M_TOP_PAD)``)
removes the faults; each worker holds at most that much more memory.

Only the process's allocator changes, never a number. Elsewhere than Linux
with glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys

__all__ = ["pad_heap", "TOP_PAD"]

log = logging.getLogger(__name__)

TOP_PAD = 16 * 2**20  # bytes kept at the top of the heap
_M_TOP_PAD = -2  # glibc <malloc.h>
_state: dict[str, bool] = {}


def pad_heap() -> bool:
    """Set glibc's ``M_TOP_PAD`` to :data:`TOP_PAD` once per process; True when it was set."""
    if "done" in _state:
        return _state["done"]
    ok = False
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            ok = mallopt(_M_TOP_PAD, TOP_PAD) == 1
        except (OSError, AttributeError) as exc:  # no mallopt (e.g. another C library): nothing to tune
            log.debug("mallopt unavailable: %s", exc)
    _state["done"] = ok
    return ok
