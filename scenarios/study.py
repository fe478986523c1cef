"""The study: doses, true scenarios, designs to compare and simulation settings.

A :class:`Study` is what a validated scenario file becomes. Everything is
frozen; dose indices are 0-based inside the program and 1-based in files and
reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

__all__ = ["DoseLevel", "Scenario", "DesignSpec", "SimulationSettings", "Timing", "Study", "LIMITS", "true_mtd",
           "acceptable_doses", "MtdRule", "MTD_DEFINITIONS", "DEFAULT_MTD_DELTA", "Optimisation",
           "CANDIDATE_RULES", "SELECT_RULES"]

#: Explicit resource limits, so that a typo cannot exhaust the machine. Checked
#: when a study file is loaded (and, for command-line overrides and values that
#: only a built design knows, when a run starts); each error names its limit.
#: Documented in scenarios/README.md.
#:
#: ``max_doses``, ``max_scenarios``, ``max_designs``
#:     Entries of the study file's lists.
#: ``max_trials``
#:     Virtual trials per scenario (``simulation.n_trials``, ``--trials``).
#: ``max_total_trials``
#:     Trials x scenarios x designs of one run (the total work).
#: ``max_sample_size``
#:     Maximum sample size (``study.max_n``, a design's ``max_n``).
#: ``max_param_int``
#:     Magnitude of any other whole-number design parameter (patient counts
#:     such as BOIN's ``n_earlystop``, dose levels); designs size tables by them.
#: ``max_unit_patients``
#:     ``chunk_size`` x largest ``max_n``: virtual patients drawn at once by one
#:     work unit (memory per worker, ~40 bytes each).
#: ``max_file_bytes``
#:     Size of a study file.
#: ``max_list_items``
#:     Entries of any other list in a study file (e.g. accrual days).
#: ``max_nesting``
#:     Depth of nested lists/mappings in a study file.
#: ``max_yaml_nodes``
#:     Values (numbers, texts, lists, mappings) in a study file.
LIMITS: dict[str, int] = {
    "max_doses": 20,
    "max_scenarios": 200,
    "max_designs": 50,
    "max_trials": 1_000_000,
    "max_total_trials": 200_000_000,
    "max_sample_size": 500,
    "max_param_int": 100_000,
    "max_unit_patients": 10_000_000,
    "max_file_bytes": 2_000_000,
    "max_list_items": 1_000,
    "max_nesting": 20,
    "max_yaml_nodes": 50_000,
}


@dataclass(frozen=True, slots=True)
class DoseLevel:
    """One dose level: a label and an amount with its unit (e.g. 1e6 CAR+ T cells/kg)."""

    label: str
    amount: float
    unit: str = ""

    def describe(self) -> str:
        amt = f"{self.amount:.3g}"
        return f"{self.label} ({amt} {self.unit})".strip() if self.unit else f"{self.label} ({amt})"


#: The definitions of the true MTD a study file may choose (``study.mtd_definition``).
MTD_DEFINITIONS: Final[tuple[str, ...]] = ("highest_below", "closest")
#: Default :math:`\\delta` of the true-MTD rule and of the acceptable band (``study.mtd_delta``).
DEFAULT_MTD_DELTA: Final[float] = 0.05
# Rounding slack when a true DLT rate is compared with target +/- delta (0.30 + 0.05 must admit 0.35).
_SLACK: Final[float] = 1e-9


def true_mtd(p_dlt: Any, target: float, *, delta: float = DEFAULT_MTD_DELTA,
             definition: Literal["highest_below", "closest"] = "highest_below") -> int | None:
    """0-based true MTD of a DLT curve, or ``None`` when no dose is tolerable.

    ``"highest_below"`` (default): the highest dose whose true DLT rate is at
    most :math:`\\phi + \\delta` (target :math:`\\phi`); ``None`` when even the
    lowest dose exceeds it, so that stopping without a dose is the correct
    answer in an all-toxic scenario. :math:`\\phi \\pm \\delta` is the
    indifference interval of Cheung & Chappell (2002), Biometrics 58:671-674.
    With a DLT curve that decreases somewhere (allowed, with a warning) it is
    still the *highest* such dose.

    ``"closest"``: the dose whose true DLT rate is closest to the target (ties:
    the lower dose), as ``BOIN::get.oc`` marks it; always a dose.

    Examples
    --------
    >>> true_mtd([0.05, 0.12, 0.30, 0.45], 0.30)
    2
    >>> true_mtd([0.50, 0.60], 0.30) is None, true_mtd([0.50, 0.60], 0.30, definition="closest")
    (True, 0)
    >>> true_mtd([0.05, 0.10, 0.20, 0.35, 0.50], 0.30)   # 0.35 <= 0.30 + 0.05
    3
    """
    p = np.asarray(p_dlt, float)
    if definition == "closest":
        return int(np.argmin(np.abs(p - target)))
    if definition != "highest_below":
        raise ValueError(f"definition must be one of {', '.join(MTD_DEFINITIONS)}; got {definition!r}")
    ok = np.flatnonzero(p <= target + delta + _SLACK)
    return int(ok[-1]) if ok.size else None


def acceptable_doses(p_dlt: Any, target: float, *, delta: float = DEFAULT_MTD_DELTA) -> tuple[int, ...]:
    """0-based doses whose true DLT rate is within :math:`\\phi \\pm \\delta` (the acceptable band).

    >>> acceptable_doses([0.05, 0.27, 0.33, 0.45], 0.30)
    (1, 2)
    """
    p = np.asarray(p_dlt, float)
    return tuple(int(j) for j in np.flatnonzero(np.abs(p - target) <= delta + _SLACK))


@dataclass(frozen=True, slots=True)
class MtdRule:
    """How a study defines the true MTD and the acceptable doses of a scenario.

    Attributes
    ----------
    target
        :math:`\\phi`, the target DLT rate.
    delta
        :math:`\\delta` (``study.mtd_delta``, default 0.05).
    definition
        ``"highest_below"`` or ``"closest"`` (``study.mtd_definition``); see :func:`true_mtd`.
    """

    target: float
    delta: float = DEFAULT_MTD_DELTA
    definition: Literal["highest_below", "closest"] = "highest_below"

    def mtd(self, p_dlt: Any) -> int | None:
        """0-based true MTD, or ``None`` (see :func:`true_mtd`)."""
        return true_mtd(p_dlt, self.target, delta=self.delta, definition=self.definition)

    def acceptable(self, p_dlt: Any) -> tuple[int, ...]:
        """0-based doses within :math:`\\phi \\pm \\delta`."""
        return acceptable_doses(p_dlt, self.target, delta=self.delta)

    def describe(self) -> str:
        """The rule in one sentence (for manifests and reports)."""
        if self.definition == "closest":
            return (f"true MTD: the dose whose true DLT rate is closest to the target {self.target:g} (ties: the "
                    f"lower dose); acceptable doses: true DLT rate within {self.target:g} \u00b1 {self.delta:g}")
        return (f"true MTD: the highest dose whose true DLT rate is at most {self.target + self.delta:g} (target "
                f"{self.target:g} + \u03b4 {self.delta:g}), none when even the lowest dose exceeds it; acceptable "
                f"doses: true DLT rate within {self.target:g} \u00b1 {self.delta:g}")

    def explain(self, p_dlt: Any, labels: Any = None) -> str:
        """Why a scenario's true MTD is what it is (one sentence naming the dose and its true DLT rate)."""
        p = [float(v) for v in p_dlt]
        names = list(labels) if labels is not None else [f"DL{j + 1}" for j in range(len(p))]
        m = self.mtd(p)
        if self.definition == "closest":
            return (f"{names[m]}: its true DLT rate {p[m]:g} is the closest to the target {self.target:g}")
        limit = self.target + self.delta
        if m is None:
            return (f"none: even the lowest dose, {names[0]}, has a true DLT rate of {p[0]:g} > {limit:g} "
                    f"(target {self.target:g} + \u03b4 {self.delta:g}); the correct decision is to select no dose")
        above = f"; {names[m + 1]} has {p[m + 1]:g} > {limit:g}" if m + 1 < len(p) else "; it is the highest dose"
        return (f"{names[m]}: the highest dose whose true DLT rate ({p[m]:g}) is at most {limit:g} (target "
                f"{self.target:g} + \u03b4 {self.delta:g}){above}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A true state of nature: P(DLT) and P(response) per dose, and their association."""

    name: str
    p_dlt: tuple[float, ...]
    p_response: tuple[float, ...]
    association: float = 0.0
    description: str = ""
    #: The CAR-T patient model (:class:`escalade.scenarios.cart.CartModel`), ``None`` without its sections;
    #: ``p_dlt``/``p_response`` are then the values it derives.
    cart: Any = None

    def mtd(self, target: float, *, delta: float = DEFAULT_MTD_DELTA,
            definition: Literal["highest_below", "closest"] = "highest_below") -> int | None:
        """0-based true MTD, ``None`` when no dose is tolerable (see :func:`true_mtd`)."""
        return true_mtd(self.p_dlt, target, delta=delta, definition=definition)


@dataclass(frozen=True, slots=True)
class DesignSpec:
    """A design to compare: display name, registry kind and its parameters as given."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """Number of trials, seed, chunk size (fixed; results never depend on workers) and exact mode."""

    n_trials: int = 1000
    seed: int = 2026
    chunk_size: int = 500
    exact: bool = False


@dataclass(frozen=True, slots=True)
class Timing:
    """Calendar time in the simulator (the study file's optional ``timing`` section).

    Attributes
    ----------
    accrual
        ``"poisson"`` (exponential gaps at ``rate_per_month``), ``"uniform"``
        (gaps uniform on ``(0, 2 * 30.4375 / rate_per_month)`` days: the same mean
        rate, less spread; the accrual of the BF-BOIN software, Zhao et al. 2024), ``"fixed"``
        (one arrival every ``30.4375 / rate_per_month`` days) or ``"list"``
        (the arrival days in ``arrival_days``, then fixed gaps at the rate).
    rate_per_month
        Mean arrivals per month (30.4375 days).
    arrival_days
        Explicit arrival days for ``accrual="list"``.
    dlt_onset
        Distribution of the DLT onset time within the DLT window:
        ``"uniform"``, or ``"early"`` (Beta(1, 3) of the window: most DLTs,
        e.g. CRS, in the first week or two), or ``"late"`` (Beta(3, 1)).
    enrolment
        ``"cohort"``: each cohort is dosed, then followed for the whole DLT
        window before the next decision (3+3/BOIN/CRM default);
        ``"stagger"``: as ``cohort``, but the first patient at each new dose
        is observed ``stagger_days`` before the others are dosed.
    stagger_days
        Days the first patient of a cohort is observed alone (``stagger``).
    enabled
        False when the study file has no ``timing`` section (no calendar time).
    """

    accrual: str = "poisson"
    rate_per_month: float = 1.5
    arrival_days: tuple[float, ...] = ()
    dlt_onset: str = "uniform"
    enrolment: str = "cohort"
    stagger_days: float = 0.0
    enabled: bool = False


#: Named rules for the candidate doses of the randomised optimisation stage.
CANDIDATE_RULES: Final = ("mtd_and_next_lower", "obd_and_mtd")
#: Selection rules of the randomised optimisation stage.
SELECT_RULES: Final = ("utility", "orr_with_safety")


@dataclass(frozen=True, slots=True)
class Optimisation:
    """The randomised dose-optimisation stage after escalation (the study file's optional ``optimisation``).

    Every trial that selects a dose goes on to randomise ``n_per_arm`` new patients to each candidate dose
    (:mod:`escalade.simulations.stage2`), then selects one by ``select_by`` from the stage-2 data.

    Attributes
    ----------
    candidates
        ``"mtd_and_next_lower"`` (the escalation's selected dose and the one below), ``"obd_and_mtd"`` (the
        design's selection, its OBD for a phase I/II design, and the isotonic MTD of the stage-1 data), or a
        tuple of 0-based doses (those above the escalation's selection are not opened).
    n_per_arm
        Patients randomised to each candidate dose.
    randomisation
        ``"equal"``: exactly ``n_per_arm`` per arm (permuted blocks; the order of the patients does not matter
        to the selection).
    select_by
        ``"orr_with_safety"``: the highest observed response rate among the arms whose observed DLT rate is at
        most ``max_tox``; ``"utility"``: the highest mean utility (per patient: 100 response without DLT,
        ``u11`` both, ``u00`` neither, 0 DLT without response; BOIN12's scale, Lin et al. 2020), among arms
        within ``max_tox`` when it is given. Ties: the lower dose. No arm within ``max_tox``: no dose.
    max_tox
        Highest acceptable observed DLT rate in an arm (``orr_with_safety``: the study target when not given).
    u11, u00
        Utilities of a patient with both DLT and response, and with neither.
    """

    candidates: str | tuple[int, ...] = "mtd_and_next_lower"
    n_per_arm: int = 20
    randomisation: str = "equal"
    select_by: str = "orr_with_safety"
    max_tox: float | None = None
    u11: float = 60.0
    u00: float = 40.0

    def __post_init__(self) -> None:
        if isinstance(self.candidates, str):
            if self.candidates not in CANDIDATE_RULES:
                raise ValueError(f"optimisation.candidates = {self.candidates!r} must be one of {CANDIDATE_RULES} or "
                                 "a tuple of 0-based doses")
        elif not self.candidates or any(not isinstance(d, int) or d < 0 for d in self.candidates):
            raise ValueError(f"optimisation.candidates = {self.candidates!r} must be a non-empty tuple of 0-based "
                             "doses")
        if not isinstance(self.n_per_arm, int) or self.n_per_arm < 1:
            raise ValueError(f"optimisation.n_per_arm = {self.n_per_arm!r} must be an integer >= 1")
        if self.randomisation != "equal":
            raise ValueError(f"optimisation.randomisation = {self.randomisation!r} must be 'equal'")
        if self.select_by not in SELECT_RULES:
            raise ValueError(f"optimisation.select_by = {self.select_by!r} must be one of {SELECT_RULES}")
        if self.max_tox is not None and not 0.0 <= self.max_tox <= 1.0:
            raise ValueError(f"optimisation.max_tox = {self.max_tox!r} must be in [0, 1] (or None)")

    @property
    def n_arms(self) -> int:
        """Most arms a trial can open."""
        return len(self.candidates) if isinstance(self.candidates, tuple) else 2

    def describe(self) -> str:
        """One sentence for reports."""
        named = {"mtd_and_next_lower": "the escalation's selected dose and the next lower",
                 "obd_and_mtd": "the design's selected dose and the isotonic MTD of the escalation data"}
        cand = (named.get(self.candidates, self.candidates) if isinstance(self.candidates, str)
                else "dose levels " + ", ".join(str(d + 1) for d in self.candidates)
                + " up to the escalation's selected dose")
        rule = ("highest observed response rate" if self.select_by == "orr_with_safety"
                else f"highest mean utility (u11 = {self.u11:g}, u00 = {self.u00:g})")
        safe = "" if self.max_tox is None else f" among arms with observed DLT rate <= {self.max_tox:g}"
        return (f"{self.n_per_arm} patients randomised to each candidate dose ({cand}); selection by {rule}{safe}, "
                "ties to the lower dose")


@dataclass(frozen=True, slots=True)
class Study:
    """A validated study file."""

    title: str
    target: float
    cohort_size: int
    max_n: int
    start_dose: int
    dlt_window_days: float
    response_days: float
    doses: tuple[DoseLevel, ...]
    designs: tuple[DesignSpec, ...]
    scenarios: tuple[Scenario, ...]
    simulation: SimulationSettings
    timing: Timing = field(default_factory=Timing)
    source: str | None = None
    sha256: str = ""
    text: str = ""
    mtd_delta: float = DEFAULT_MTD_DELTA
    mtd_definition: Literal["highest_below", "closest"] = "highest_below"
    optimisation: Optimisation | None = None

    @property
    def n_doses(self) -> int:
        return len(self.doses)

    @property
    def mtd_rule(self) -> MtdRule:
        """The study's definition of the true MTD and of the acceptable doses (one place for every layer)."""
        return MtdRule(self.target, self.mtd_delta, self.mtd_definition)

    def design_defaults(self) -> dict[str, Any]:
        """Study-level values a design config takes when it has a field of that name."""
        return {
            "target": self.target,
            "n_doses": self.n_doses,
            "cohort_size": self.cohort_size,
            "max_n": self.max_n,
            "start_dose": self.start_dose,
            "doses": tuple(d.amount for d in self.doses),
        }

    def dose_labels(self) -> list[str]:
        return [d.label for d in self.doses]
