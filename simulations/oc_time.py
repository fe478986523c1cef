"""Calendar-time operating characteristics: trial duration and accrual suspensions.

Rows in the tidy format of :func:`escalade.simulations.oc.operating_characteristics`
(``scenario, design, metric, dose, value, se, exact``; ``dose`` empty), from the
``duration`` and ``suspensions`` that the time-aware engine
(:mod:`escalade.simulations.timed`) stores in
:class:`~escalade.simulations.outcomes.TrialOutcomes`:

* ``duration_days`` -- mean trial duration (first dosing to the end of the last
  patient's follow-up), with its Monte Carlo standard error :math:`s/\\sqrt T`;
  it, ``suspensions`` and ``suspended_pct`` are per-trial means
  (:func:`time_per_trial`), part of the per-trial metric table of
  :mod:`escalade.simulations.oc` and so paired between designs like the others;
* ``duration_days_median``, ``duration_days_p10``, ``duration_days_p90`` -- quantiles
  (inverse of the weighted empirical CDF). Their standard error is the
  distribution-free one from order statistics: half the distance between the
  quantiles at :math:`q \\pm \\sqrt{q(1-q)/T}` (the normal approximation to the
  binomial count below the quantile; e.g. Conover, *Practical Nonparametric
  Statistics*, 3rd ed., section 3.2), with :math:`T` the (Kish) effective number
  of trials;
* ``suspensions`` -- mean number of patients per trial who waited to be dosed
  (arrived while the trial was closed to enrolment), with its standard error;
* ``suspended_pct`` -- % of trials with at least one such patient.

Exact enumeration has no calendar time, so these rows are always Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from escalade.simulations.oc import PerTrial, TrialTable
from escalade.simulations.outcomes import TrialOutcomes

__all__ = ["TIME_METRICS", "time_characteristics", "time_rows", "time_per_trial", "weighted_quantile"]

#: The metrics this module adds, in output order.
TIME_METRICS: tuple[str, ...] = ("duration_days", "duration_days_median", "duration_days_p10",
                                 "duration_days_p90", "suspensions", "suspended_pct")

_COLUMNS = ["scenario", "design", "metric", "dose", "value", "se", "exact"]


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Smallest ``x`` whose weighted empirical CDF reaches ``q`` (inverse CDF; unit weights: type 1).

    >>> weighted_quantile(np.array([3.0, 1.0, 2.0, 4.0]), np.ones(4), 0.5)
    2.0
    """
    order = np.argsort(x, kind="stable")
    xs = np.asarray(x, float)[order]
    cw = np.cumsum(np.asarray(w, float)[order])
    cw /= cw[-1]
    k = int(np.searchsorted(cw, min(max(q, 0.0), 1.0) - 1e-12, side="left"))
    return float(xs[min(k, xs.size - 1)])


def time_per_trial(out: TrialOutcomes) -> dict[str, PerTrial]:
    """Per-trial duration and suspensions (means), empty without calendar time."""
    if out.duration is None:
        return {}
    cols = {"duration_days": PerTrial(np.asarray(out.duration, float))}
    if out.suspensions is not None:
        s = np.asarray(out.suspensions, float)
        cols["suspensions"] = PerTrial(s)
        cols["suspended_pct"] = PerTrial((s > 0).astype(float), None, 100.0)
    return cols


def _quantile_se(x: np.ndarray, w: np.ndarray, q: float) -> tuple[float, float]:
    value = weighted_quantile(x, w, q)
    t_eff = 1.0 / float(np.sum(w * w))
    if t_eff < 2:
        return value, 0.0
    half = np.sqrt(q * (1.0 - q) / t_eff)
    lo = weighted_quantile(x, w, q - half)
    hi = weighted_quantile(x, w, q + half)
    return value, (hi - lo) / 2.0


def time_characteristics(out: TrialOutcomes, *, scenario: str = "", design: str = "") -> pd.DataFrame:
    """Duration and suspension rows for one scenario x design (empty without calendar time).

    Examples
    --------
    >>> import numpy as np
    >>> from escalade.simulations.outcomes import TrialOutcomes
    >>> z = np.zeros((4, 2), np.int64)
    >>> o = TrialOutcomes(np.zeros(4, np.int64), np.ones(4, np.int8), z, z, z, z, np.ones(4, np.int64),
    ...                   np.full(4, 0.25), duration=np.array([100.0, 200.0, 300.0, 400.0]),
    ...                   suspensions=np.array([0, 1, 2, 3]))
    >>> df = time_characteristics(o, scenario="s", design="d")
    >>> df.set_index("metric").loc[["duration_days", "duration_days_median", "suspended_pct"], "value"].tolist()
    [250.0, 200.0, 75.0]
    """
    if out.duration is None or out.n_trials == 0:
        return pd.DataFrame(columns=_COLUMNS)
    w = np.full(out.n_trials, 1.0 / out.n_trials)  # simulated trials (exact enumeration has no calendar time)
    means = TrialTable(np.arange(out.n_trials), w, False, {(m, ""): c for m, c in time_per_trial(out).items()})
    return time_rows(lambda m: means.estimate((m, "")), np.asarray(out.duration, float),
                     [m for m, _ in means.columns], scenario=scenario, design=design)


def time_rows(estimate: Callable[[str], tuple[float, float]], duration: np.ndarray, metrics: Sequence[str], *,
              scenario: str = "", design: str = "") -> pd.DataFrame:
    """The rows of :func:`time_characteristics` from the means' estimates and every trial's duration.

    ``estimate(metric)`` gives the value and SE of the per-trial means of
    :func:`time_per_trial` (``metrics``: those present), however they were
    computed (whole tables, or accumulated blocks: :mod:`escalade.simulations.oc_moments`);
    the quantiles need ``duration``, every simulated trial's (unit weights).
    """
    w = np.full(duration.size, 1.0 / duration.size)
    rows: list[tuple[str, float, float]] = [("duration_days", *estimate("duration_days"))]
    for name, q in (("duration_days_median", 0.5), ("duration_days_p10", 0.1), ("duration_days_p90", 0.9)):
        rows.append((name, *_quantile_se(duration, w, q)))
    for name in ("suspensions", "suspended_pct"):
        if name in metrics:
            rows.append((name, *estimate(name)))
    df = pd.DataFrame(rows, columns=["metric", "value", "se"])
    df.insert(0, "design", design)
    df.insert(0, "scenario", scenario)
    df.insert(3, "dose", "")
    df["exact"] = False
    return df[_COLUMNS]
