"""Small designs used only by the tests.

``ToyPhase12`` is a complete design in one module (config, design, explanation,
methods writer and its one registry ``ENTRY``): tests/test_seam_toy.py registers
it and runs it through every part of escalade with no other change. It
decides on responses (``uses_efficacy = True``) so that the multinomial
enumeration and the copula cells are exercised without depending on EffTox; ``CountingDesign`` wraps a design and records every batch it is
asked about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from escalade.design.base import NO_DOSE, Decisions, DesignEntry, ExplanationMixin, IntArray, States, StopReason
from escalade.design.config import check_int


@dataclass(frozen=True, slots=True, kw_only=True)
class ToyConfig:
    """Toy phase I/II parameters.

    Attributes
    ----------
    n_doses
        Number of dose levels.
    max_n
        Maximum sample size.
    """

    n_doses: int = 3
    max_n: int = 9

    def __post_init__(self) -> None:
        check_int("n_doses", self.n_doses, low=1)
        check_int("max_n", self.max_n, low=1)


@dataclass(frozen=True, slots=True)
class ToyExplanation(ExplanationMixin):
    """Observed response and DLT rates per dose (1-based current dose)."""

    current_dose: int
    dlt_rate: tuple[float, ...]
    response_rate: tuple[float, ...]
    rule: str = "toy: de-escalate above 1/3 DLTs, escalate below 1/2 responses, else stay"

    def table(self) -> dict[str, list[float]]:
        return {"observed_dlt_rate": list(self.dlt_rate), "observed_response_rate": list(self.response_rate)}


@dataclass(frozen=True)
class ToyPhase12:
    """At the current dose ``d`` with ``n`` patients, ``y`` DLTs and ``r`` responders:

    * ``y / n > 1/3``: de-escalate (stop with ALL_TOXIC at dose 1);
    * else ``r / n < 1/2`` and ``d`` is not the top: escalate;
    * else stay. Cohorts of 2 before 4 patients at the current dose, then 3.

    Final selection: the treated dose maximising ``(r - both) - y`` per patient (ties: lower dose).
    """

    config: ToyConfig = field(default_factory=ToyConfig)
    kind: ClassVar[str] = "toy12"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = True
    memoise: ClassVar[bool] = True

    @property
    def n_doses(self) -> int:
        return self.config.n_doses

    @property
    def max_n(self) -> int:
        return self.config.max_n

    def start(self) -> tuple[int, int]:
        return 0, 2

    def decide(self, states: States) -> Decisions:
        d = states.current
        n = states.at_current(states.n)
        y = states.at_current(states.tox)
        r = states.at_current(states.eff)
        toxic = 3 * y > n
        esc = ~toxic & (2 * r < n) & (d < self.n_doses - 1)
        nxt = np.where(toxic, d - 1, np.where(esc, d + 1, d))
        size = np.where(n < 4, 2, 3)
        out = Decisions.go(np.maximum(nxt, 0), size)
        return out.with_stop(toxic & (d == 0), StopReason.ALL_TOXIC)

    def select(self, states: States) -> IntArray:
        n = states.n.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(n > 0, (states.eff - states.both - states.tox) / np.maximum(n, 1), -np.inf)
        best = np.argmax(score, axis=1)
        none = ~(states.n > 0).any(axis=1) | (states.tox[:, 0] * 3 > states.n[:, 0])
        return np.where(none, NO_DOSE, best).astype(np.int64)

    def explain(self, states: States, **options: Any) -> ToyExplanation:
        n = np.maximum(states.n[0], 1)
        return ToyExplanation(int(states.current[0]) + 1, tuple((states.tox[0] / n).tolist()),
                              tuple((states.eff[0] / n).tolist()))


def toy12_methods(run: Any, design: Any, index: int) -> Any:
    """Methods text of the toy design (a report writer, named by the entry below)."""
    from escalade.reports.methods import MethodsSection, parameter_table

    return MethodsSection(design.name, design.kind, "Toy phase I/II design",
                          ["Toy rule: de-escalate above one DLT in three, escalate below one response in two."],
                          parameter_table(run, design, index), references=("Toy (2026), tests/_toy_designs.py.",))


#: The toy's one registry entry (tests register it with ``escalade.design.registry.registered``).
ENTRY = DesignEntry(kind="toy12", name="Toy phase I/II design", config=ToyConfig, design=ToyPhase12,
                    explanation=ToyExplanation, methods="_toy_designs:toy12_methods",
                    citation="Toy (2026). A design that exists only in escalade's tests.")


@dataclass
class CountingDesign:
    """Forwards to ``inner`` and keeps every batch of states passed to ``decide``."""

    inner: Any
    batches: list[np.ndarray] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def enumerable(self) -> bool:
        return self.inner.enumerable

    @property
    def uses_efficacy(self) -> bool:
        return self.inner.uses_efficacy

    @property
    def n_doses(self) -> int:
        return self.inner.n_doses

    @property
    def max_n(self) -> int:
        return self.inner.max_n

    def start(self) -> tuple[int, int]:
        return self.inner.start()

    def decide(self, states: States) -> Decisions:
        self.batches.append(states.matrix())
        return self.inner.decide(states)

    def select(self, states: States) -> IntArray:
        return self.inner.select(states)


@dataclass
class SelectsCurrent(CountingDesign):
    """``inner``'s decisions, but the selected dose is the last cohort's dose (a select() that
    reads the path state, as 3+3's does)."""

    def select(self, states: States) -> IntArray:
        return states.current.copy()
