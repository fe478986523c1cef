"""A small CAR-T study used by the tests/test_cart_*.py files (text only; parsed by each test)."""

from __future__ import annotations

import dataclasses

from escalade.scenarios.load import parse_study

__all__ = ["CART_TEXT", "PLAIN_TEXT", "cart_study", "plain_study"]

#: Three doses; scenario "plain" has no CAR-T sections, "graded" has all of them.
PLAIN_TEXT = """
study: {target: 0.3, cohort_size: 3, max_n: 21, dlt_window_days: 28}
doses:
  - {amount: 1}
  - {amount: 2}
  - {amount: 3}
  - {amount: 4}
designs:
  - {design: boin}
  - {design: crm, params: {skeleton: [0.1, 0.2, 0.3, 0.4]}}
  - {design: "3+3"}
scenarios:
  - {name: a, p_dlt: [0.05, 0.15, 0.3, 0.45], p_response: [0.2, 0.3, 0.4, 0.5]}
  - {name: b, p_dlt: [0.1, 0.3, 0.5, 0.6], p_response: [0.3, 0.3, 0.4, 0.5], association: 0.4}
simulation: {n_trials: 300, seed: 99, chunk_size: 100}
"""

GRADED_SCENARIO = """
  - name: graded
    adverse_events:
      types:
        crs:
          onset: early
          grades: [[0.5, 0.3, 0.12, 0.06, 0.02, 0.0], [0.3, 0.35, 0.2, 0.1, 0.04, 0.01],
                   [0.2, 0.3, 0.25, 0.15, 0.08, 0.02], [0.1, 0.3, 0.25, 0.2, 0.1, 0.05]]
        icans:
          grades: [[0.8, 0.1, 0.05, 0.04, 0.01, 0.0], [0.7, 0.12, 0.08, 0.07, 0.03, 0.0],
                   [0.6, 0.12, 0.1, 0.12, 0.05, 0.01], [0.5, 0.15, 0.1, 0.15, 0.08, 0.02]]
        cytopenia:
          onset: late
          grades: [[0.6, 0.2, 0.1, 0.07, 0.03, 0.0], [0.5, 0.2, 0.15, 0.1, 0.05, 0.0],
                   [0.4, 0.2, 0.2, 0.12, 0.08, 0.0], [0.3, 0.2, 0.2, 0.18, 0.12, 0.0]]
      correlation: {crs~icans: 0.5, crs~response: 0.3, icans~response: 0.1}
    response:
      categories: [mrd_neg_cr, cr, crh, pr, nr]
      assessments:
        day28: {day: 28, probs: [[0.1, 0.1, 0.1, 0.2, 0.5], [0.2, 0.1, 0.1, 0.2, 0.4],
                                 [0.3, 0.1, 0.1, 0.2, 0.3], [0.35, 0.1, 0.1, 0.2, 0.25]]}
        month3: {day: 90, probs: [[0.12, 0.08, 0.1, 0.1, 0.6], [0.22, 0.1, 0.08, 0.1, 0.5],
                                  [0.32, 0.1, 0.08, 0.1, 0.4], [0.36, 0.1, 0.09, 0.1, 0.35]]}
    survival:
      efs:
        mrd_neg_cr: {cure: 0.5, shape: 1.0, median_months: 12}
        cr: {cure: 0.3, shape: 1.3, median_months: 8}
        crh: {cure: 0.2, shape: 1.0, median_months: 6}
        pr: {hazards_per_month: [0.3, 0.1], breaks_months: [6]}
        nr: {shape: 1.2, median_months: 2}
      os:
        mrd_neg_cr: {cure: 0.6, shape: 1.0, median_months: 30}
        cr: {cure: 0.4, shape: 1.3, median_months: 20}
        crh: {cure: 0.3, shape: 1.0, median_months: 14}
        pr: {hazards_per_month: [0.1, 0.05], breaks_months: [12]}
        nr: {shape: 1.2, median_months: 6}
    expansion:
      peak: {median: [20, 40, 80, 120], gsd: 3}
      auc: {median: [200, 400, 800, 1200], gsd: 3.5}
      correlation_with_response: 0.4
"""

MANUFACTURING = """    manufacturing: {p_short: [0, 0.1, 0.2, 0.3], lands: [0.7, 0.3], decide_on: DECIDE}
"""

# the plain study plus the graded scenario (last in the list) and the protocol's DLT rule
CART_TEXT = PLAIN_TEXT.replace(
    "simulation:", "dlt_rule: {crs: 3, icans: 3, any: 5, other: 4}\nsimulation:")
CART_TEXT = CART_TEXT.replace("\ndlt_rule:", GRADED_SCENARIO.rstrip("\n") + "\ndlt_rule:", 1)


def plain_study():
    return parse_study(PLAIN_TEXT, source="plain.yaml")


def cart_study(*, manufacturing: str | None = None, n_trials: int | None = None):
    text = CART_TEXT
    if manufacturing is not None:
        text = text.replace("\ndlt_rule:", "\n" + MANUFACTURING.replace("DECIDE", manufacturing).rstrip("\n")
                            + "\ndlt_rule:", 1)
    s = parse_study(text, source="cart.yaml")
    if n_trials is not None:
        s = dataclasses.replace(s, simulation=dataclasses.replace(s.simulation, n_trials=n_trials))
    return s
