"""The appendix's backfill block and the backfill OCs through the whole pipeline (run -> oc.csv -> report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from escalade.cli import main
from escalade.reports.backfill import backfill_context, backfill_pairs
from escalade.reports.load import load_run

STUDY = """
study: {title: "Backfill check", target: 0.3, cohort_size: 3, max_n: 18, start_dose: 1, dlt_window_days: 28,
        response_days: 28}
doses:
  - {label: DL1, amount: 1, unit: mg}
  - {label: DL2, amount: 2, unit: mg}
  - {label: DL3, amount: 3, unit: mg}
  - {label: DL4, amount: 4, unit: mg}
designs:
  - {name: BOIN, design: boin}
  - {name: "3+3", design: "3+3"}
  - name: BOIN with backfill
    design: boin
    params: {backfill: {max_per_dose: 9}}
scenarios:
  - {name: Middle, p_dlt: [0.05, 0.15, 0.3, 0.5], p_response: [0.3, 0.4, 0.5, 0.5]}
  - {name: Low, p_dlt: [0.02, 0.05, 0.1, 0.15], p_response: [0.3, 0.4, 0.5, 0.5]}
timing: {accrual: {process: poisson, rate_per_month: 3}}
simulation: {n_trials: 200, seed: 7, chunk_size: 100}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bf")
    study = root / "study.yaml"
    study.write_text(STUDY)
    out = root / "run"
    assert main(["run", str(study), "--jobs", "1", "--out", str(out), "--no-progress"]) == 0
    return out


def test_backfill_metrics_in_oc_csv(run_dir: Path) -> None:
    oc = pd.read_csv(run_dir / "oc.csv")
    bf = oc[oc.design == "BOIN with backfill"]
    assert {"backfill_patients", "backfill_escalation_patients", "backfill_total", "backfill_pct"} <= set(bf.metric)
    assert "backfill_total" not in set(oc[oc.design == "BOIN"].metric)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    t_bf = trials[trials.design == "BOIN with backfill"]
    cols = [f"backfill_{j}" for j in range(1, 5)]
    assert t_bf[cols].notna().all().all() and trials[trials.design == "BOIN"][cols].isna().all().all()
    assert (t_bf[cols].to_numpy().sum(axis=1) <= t_bf["sample_size"].to_numpy()).all()
    for s in ("Middle", "Low"):
        rows = bf[bf.scenario == s].set_index(["metric", "dose"])["value"]
        per_dose = [rows[("patients", d)] for d in ("DL1", "DL2", "DL3", "DL4")]
        split = [rows[("backfill_patients", d)] + rows[("backfill_escalation_patients", d)]
                 for d in ("DL1", "DL2", "DL3", "DL4")]
        assert np.allclose(per_dose, split)
        tot = bf[(bf.scenario == s) & (bf.metric == "backfill_total")]["value"].iloc[0]
        assert tot > 0.5
        assert sum(rows[("backfill_patients", d)] for d in ("DL1", "DL2", "DL3", "DL4")) == pytest.approx(tot)


def test_other_designs_do_not_depend_on_the_backfill_design(run_dir: Path, tmp_path: Path) -> None:
    """Adding a design with backfill (more patient slots per trial) leaves the others' numbers unchanged."""
    study = tmp_path / "study.yaml"
    text = STUDY.replace("  - name: BOIN with backfill\n    design: boin\n"
                         "    params: {backfill: {max_per_dose: 9}}\n", "")
    study.write_text(text)
    out = tmp_path / "run"
    assert main(["run", str(study), "--jobs", "1", "--out", str(out), "--no-progress"]) == 0
    a = pd.read_csv(out / "oc.csv")
    b = pd.read_csv(run_dir / "oc.csv")
    b = b[b.design.isin(["BOIN", "3+3"])]
    key = ["scenario", "design", "metric", "dose"]
    m = a.merge(b, on=key, suffixes=("_a", "_b"))
    assert len(m) == len(a)
    assert np.allclose(m.value_a, m.value_b, equal_nan=True)


def test_appendix_backfill_block(run_dir: Path) -> None:
    run = load_run(run_dir)
    pairs = backfill_pairs(run)
    assert [(a.name, b.name) for a, b in pairs] == [("BOIN", "BOIN with backfill")]
    ctx = backfill_context(run)
    assert ctx is not None and "BF-BOIN" in ctx["text"] and "wait for the next escalation cohort" in ctx["text"]
    (table,) = ctx["tables"]
    assert [r[0].text for r in table.rows] == ["Middle", "Low"]
    oc = pd.read_csv(run_dir / "oc.csv").set_index(["scenario", "design", "metric"])
    n_with = oc.loc[("Middle", "BOIN with backfill", "sample_size"), "value"]
    assert table.rows[0][2].text == f"{float(n_with):.1f}"
    assert main(["report", str(run_dir), "--format", "html", "--out", str(run_dir / "rep")]) == 0
    html = (run_dir / "rep.html").read_text()
    assert "With and without backfill" in html and "Backfill cohorts (BF-BOIN" in html


def test_same_numbers_with_two_workers(run_dir: Path, tmp_path: Path) -> None:
    """Backfill designs run in the calendar engine per work unit: the worker count never changes a number."""
    import json

    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    out = tmp_path / "run2"
    assert main(["run", str(study), "--jobs", "2", "--out", str(out), "--no-progress"]) == 0
    a = json.loads((run_dir / "manifest.json").read_text())["results_sha256"]
    b = json.loads((out / "manifest.json").read_text())["results_sha256"]
    assert a == b
