"""Trial-level outcomes: one row per finished virtual trial (or exact terminal state).

The simulator fills :class:`TrialOutcomes` with one row per trial and unit
weights; exact enumeration fills it with one row per distinct terminal state
and the state's probability as its weight. Operating characteristics
(:mod:`escalade.simulations.oc`) are weighted averages over these rows, so both
routes give the same table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from escalade.design.base import NO_DOSE, IntArray

__all__ = ["TrialOutcomes"]


@dataclass(frozen=True, slots=True, eq=False)
class TrialOutcomes:
    """Final per-trial results, arrays over trials ``T`` (and doses ``D``).

    Attributes
    ----------
    selected
        ``(T,)`` recommended dose, 0-based, :data:`NO_DOSE` for none.
    reason
        ``(T,)`` :class:`~escalade.design.base.StopReason` value.
    n, tox, eff, both
        ``(T, D)`` patients, DLTs, responders, DLT-and-response per dose. For
        exact enumeration of a design that ignores response, ``eff`` and
        ``both`` are floats: the exact expected counts given the row's state.
    cohorts
        ``(T,)`` number of cohorts enrolled.
    weight
        ``(T,)`` probability weight: ``1/T`` for simulated trials, the exact
        probability of the terminal state for enumeration (sums to 1).
    exact
        True when ``weight`` holds exact probabilities (no Monte Carlo error).
    trial
        ``(T,)`` trial index within the scenario (simulation) or state index.
    duration
        ``(T,)`` calendar duration in days (first enrolment to the last
        patient's end of follow-up), when the simulation tracks time.
    suspensions
        ``(T,)`` number of accrual suspensions (arrivals that had to wait for
        follow-up before they could be dosed), when time is tracked.
    n_backfill
        ``(T, D)`` backfill patients per dose (included in ``n``), for a design
        with backfill cohorts (:class:`~escalade.design.rules.Backfill`); None otherwise.
    extra
        Per-trial tallies of the CAR-T patient by name (``(T,)`` or ``(T, D)``,
        :func:`escalade.simulations.graded.graded_counts`), or ``None`` when the
        scenario has no CAR-T sections.
    """

    selected: IntArray
    reason: np.ndarray
    n: IntArray
    tox: IntArray
    eff: IntArray
    both: IntArray
    cohorts: IntArray
    weight: np.ndarray
    exact: bool = False
    trial: IntArray | None = None
    duration: np.ndarray | None = None
    suspensions: IntArray | None = None
    n_backfill: IntArray | None = None
    extra: dict[str, np.ndarray] | None = None

    @property
    def n_trials(self) -> int:
        return int(self.selected.shape[0])

    @property
    def n_doses(self) -> int:
        return int(self.n.shape[1])

    @staticmethod
    def concat(parts: "list[TrialOutcomes]") -> "TrialOutcomes":
        """Stack simulated chunks (weights renormalised to ``1/T``)."""
        if not parts:
            raise ValueError("TrialOutcomes.concat needs at least one part")
        cat = np.concatenate
        t = sum(p.n_trials for p in parts)
        trial = cat([p.trial if p.trial is not None else np.arange(p.n_trials) for p in parts])
        timed = all(p.duration is not None for p in parts)
        return TrialOutcomes(
            cat([p.selected for p in parts]), cat([p.reason for p in parts]),
            cat([p.n for p in parts]), cat([p.tox for p in parts]), cat([p.eff for p in parts]),
            cat([p.both for p in parts]), cat([p.cohorts for p in parts]),
            np.full(t, 1.0 / t), exact=all(p.exact for p in parts), trial=trial,
            duration=cat([p.duration for p in parts]) if timed else None,
            suspensions=cat([p.suspensions for p in parts]) if timed and all(
                p.suspensions is not None for p in parts) else None,
            n_backfill=cat([p.n_backfill for p in parts]) if all(p.n_backfill is not None for p in parts) else None,
            extra={k: cat([p.extra[k] for p in parts]) for k in parts[0].extra}  # type: ignore[index]
            if all(p.extra is not None for p in parts) else None,
        )

    def offset(self, start: int) -> "TrialOutcomes":
        """The same outcomes with trial indices shifted by ``start`` (a chunk's first trial)."""
        base = self.trial if self.trial is not None else np.arange(self.n_trials)
        return dataclasses.replace(self, trial=base + start)

    def rows(self, a: int, b: int) -> "TrialOutcomes":
        """Trials ``a .. b - 1`` (views, no copy; every per-trial field sliced alike)."""
        sl = slice(a, b)

        def cut(x: Any) -> Any:
            return None if x is None else x[sl]

        return TrialOutcomes(self.selected[sl], self.reason[sl], self.n[sl], self.tox[sl], self.eff[sl],
                             self.both[sl], self.cohorts[sl], self.weight[sl], exact=self.exact,
                             trial=cut(self.trial), duration=cut(self.duration), suspensions=cut(self.suspensions),
                             n_backfill=cut(self.n_backfill),
                             extra=None if self.extra is None else {k: v[sl] for k, v in self.extra.items()})

    def selected_or_none(self) -> list[int | None]:
        """1-based selected doses with ``None`` for no dose (for display)."""
        return [None if s == NO_DOSE else int(s) + 1 for s in self.selected]
