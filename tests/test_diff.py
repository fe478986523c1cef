"""``escalade diff``: inputs that changed, characteristics that moved, their standard errors, the report section."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from escalade.cli import main

TRIALS = 200


def _run(study: Path, out: Path, *extra: str) -> Path:
    assert main(["run", str(study), "--trials", str(TRIALS), "--jobs", "1", "--out", str(out), "--no-progress",
                 *extra]) == 0
    return out


STUDY = """
study: {title: "Amendment test", target: 0.3, cohort_size: 3, max_n: 24, start_dose: 1}
doses:
  - {label: DL1, amount: 1.0e+5, unit: "cells/kg"}
  - {label: DL2, amount: 3.0e+5, unit: "cells/kg"}
  - {label: DL3, amount: 1.0e+6, unit: "cells/kg"}
  - {label: DL4, amount: 3.0e+6, unit: "cells/kg"}
designs:
  - {name: "3+3", design: "3+3", params: {allow_deescalation: true}}
  - {name: BOIN, design: boin, params: {cutoff_eli: 0.95, extrasafe: true}}
scenarios:
  - {name: "MTD at DL1", p_dlt: [0.30, 0.45, 0.58, 0.68], p_response: [0.35, 0.50, 0.60, 0.65]}
  - {name: "MTD at DL2", p_dlt: [0.12, 0.30, 0.45, 0.58], p_response: [0.25, 0.45, 0.60, 0.66]}
  - {name: "MTD at DL3", p_dlt: [0.05, 0.12, 0.30, 0.45], p_response: [0.15, 0.35, 0.55, 0.65]}
  - {name: "MTD at DL4", p_dlt: [0.03, 0.07, 0.15, 0.30], p_response: [0.10, 0.25, 0.45, 0.60]}
  - {name: "All doses too toxic", p_dlt: [0.50, 0.60, 0.70, 0.80], p_response: [0.40, 0.50, 0.55, 0.60]}
simulation: {n_trials: 1000, seed: 20261124}
"""


def _study(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def _amended(tmp: Path) -> Path:
    """The study after an amendment: BOIN's cutoff_eli 0.95 -> 0.90, MTD-at-DL3 truth edited, a scenario renamed."""
    text = STUDY
    for old, new in (("params: {cutoff_eli: 0.95, extrasafe: true}", "params: {cutoff_eli: 0.90, extrasafe: true}"),
                     ("p_dlt: [0.05, 0.12, 0.30, 0.45]", "p_dlt: [0.05, 0.12, 0.28, 0.45]"),
                     ('name: "MTD at DL4"', 'name: "MTD at <DL4> & top"')):
        assert old in text, old
        text = text.replace(old, new)
    return _study(tmp, "amended.yaml", text)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diff")
    base = _study(root, "study.yaml", STUDY)
    return {
        "a": _run(base, root / "a"),
        "b": _run(_amended(root), root / "b"),
        "seed": _run(base, root / "seed", "--seed", "12345"),
    }


def _oc(path: Path) -> pd.DataFrame:
    return pd.read_csv(path / "oc.csv", keep_default_na=False, na_values={"value": [""], "se": [""]})


def test_inputs_that_changed_are_named(runs: dict[str, Path]) -> None:
    from escalade.reports.diff import diff_runs
    from escalade.reports.load import load_run

    d = diff_runs(load_run(runs["a"]), load_run(runs["b"]))
    changed = {c.field: (c.before, c.after) for c in d.inputs}
    assert changed["designs[BOIN].params.cutoff_eli"] == ("0.95", "0.9")
    assert "seed" not in changed and "n_trials" not in changed
    assert changed["scenarios[MTD at DL3].p_dlt"] == ("[0.05, 0.12, 0.3, 0.45]", "[0.05, 0.12, 0.28, 0.45]")
    assert changed["scenarios[MTD at DL4]"] == ("present", "(absent)")
    assert changed["scenarios[MTD at <DL4> & top]"] == ("(absent)", "present")
    assert "study file SHA-256" in changed
    assert not any(f.startswith(("doses", "n_trials", "designs[3+3]")) for f in changed)
    assert d.scenarios_only_a == ("MTD at DL4",) and d.scenarios_only_b == ("MTD at <DL4> & top",)
    assert d.truth_changed == frozenset({"MTD at DL3"}) and not d.independent


def test_changes_and_their_standard_errors(runs: dict[str, Path]) -> None:
    from escalade.reports.diff import diff_runs
    from escalade.reports.load import load_run

    d = diff_runs(load_run(runs["a"]), load_run(runs["b"]))
    a, b = _oc(runs["a"]), _oc(runs["b"])
    m = a.merge(b, on=["scenario", "design", "metric", "dose"], suffixes=("_a", "_b"))
    assert len(d.changes) == len(m) and "MTD at DL4" not in set(d.changes.scenario)
    got = d.changes.set_index(["scenario", "design", "metric", "dose"])
    for r in m.sample(40, random_state=1).itertuples(index=False):
        g = got.loc[(r.scenario, r.design, r.metric, r.dose)]
        change = r.value_b - r.value_a
        se = math.sqrt(r.se_a ** 2 + r.se_b ** 2)
        if math.isnan(change):
            assert math.isnan(g.change) and not g.flagged
            continue
        assert g.change == pytest.approx(change, abs=1e-12) and g.se_unpaired == pytest.approx(se, abs=1e-12)
        if not g.paired:
            assert g.se_change == pytest.approx(se, abs=1e-12)
        se = g.se_change
        assert bool(g.flagged) == (abs(change) > 2 * se if se > 0 else abs(change) > 1e-9)
    # same seed: the unchanged design sees the same patients in unchanged scenarios, so it does not move at all
    tpt = d.changes[(d.changes.design == "3+3") & ~d.changes.truth_changed]
    assert len(tpt) > 60 and np.nanmax(np.abs(tpt["change"].to_numpy())) == 0.0 and not tpt["flagged"].any()
    assert d.changes[d.changes.design == "BOIN"]["change"].abs().max() > 0
    assert "conservative" in d.se_note()


def test_same_seed_changes_are_paired_trial_by_trial(runs: dict[str, Path]) -> None:
    """Same seed, trials and chunks: the change of a per-trial mean has the paired SE, recomputed here from the
    two trials files; it is far below the unpaired SE; a different seed is never paired."""
    from escalade.reports.diff import diff_runs
    from escalade.reports.load import load_run

    d = diff_runs(load_run(runs["a"]), load_run(runs["b"]))
    c = d.changes.set_index(["scenario", "design", "metric", "dose"])
    ta, tb = pd.read_parquet(runs["a"] / "trials.parquet"), pd.read_parquet(runs["b"] / "trials.parquet")
    checked = 0
    for scen, design, metric in (("MTD at DL2", "BOIN", "sample_size"), ("MTD at DL1", "BOIN", "dlts"),
                                 ("All doses too toxic", "BOIN", "sample_size")):
        g = c.loc[(scen, design, metric, "")]
        assert bool(g.paired)
        xa = ta[(ta.scenario == scen) & (ta.design == design)].sort_values("trial")[metric].to_numpy(float)
        xb = tb[(tb.scenario == scen) & (tb.design == design)].sort_values("trial")[metric].to_numpy(float)
        diff = xb - xa
        assert g.change == pytest.approx(diff.mean(), abs=1e-9)
        assert g.se_change == pytest.approx(diff.std(ddof=1) / math.sqrt(diff.size), rel=1e-9)
        assert g.se_change < g.se_unpaired
        checked += 1
    assert checked == 3 and d.n_paired > 20
    other = diff_runs(load_run(runs["a"]), load_run(runs["seed"]))
    assert other.n_paired == 0 and not other.changes["paired"].any()


def test_same_run_has_no_change(runs: dict[str, Path]) -> None:
    from escalade.reports.diff import diff_runs, format_diff
    from escalade.reports.load import load_run

    run = load_run(runs["a"])
    d = diff_runs(run, run)
    assert d.inputs == () and d.n_flagged == 0 and not d.independent
    assert np.nanmax(np.abs(d.changes["change"].to_numpy())) == 0.0
    text = format_diff(d)
    assert "Inputs changed: none" in text and "conservative" in text and "0 of" in text


def test_seed_only_change_is_noise(runs: dict[str, Path]) -> None:
    """With nothing changed but the seed, changes are Monte Carlo noise: about 5% exceed 2 SE, not many more."""
    from escalade.reports.diff import diff_runs
    from escalade.reports.load import load_run

    d = diff_runs(load_run(runs["a"]), load_run(runs["seed"]))
    assert [c.field for c in d.inputs] == ["seed"] and d.independent
    assert "independent" in d.se_note()
    c = d.changes[np.isfinite(d.changes["change"]) & (d.changes["se_change"] > 0)]
    share = float(c["flagged"].mean())
    # |z| > 2 has probability ~4.6% under no change; 15% would be ~20 SE of a binomial share above it at this size
    assert len(c) > 150 and share < 0.15, share
    z = c["change"] / c["se_change"]
    assert abs(float(z.mean())) < 0.5


def test_cli_diff_prints_a_terminal_table(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs["a"]), str(runs["b"])]) == 0
    out = capsys.readouterr().out
    assert "Inputs changed (" in out and "designs[BOIN].params.cutoff_eli" in out and "0.95 -> 0.9" in out
    assert "Not compared (scenarios only in A): MTD at DL4" in out
    assert "Key characteristics that moved by more than 2 SE" in out
    assert "Full list" not in out and "--all" in out
    summary = out[out.index("Key characteristics that moved"):]
    moved = [ln for ln in summary.splitlines() if ln.startswith("  BOIN") or ln.startswith("  3+3")]
    assert moved and any("(paired)" in ln for ln in moved)
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--all"]) == 0
    out = capsys.readouterr().out
    assert "MTD at DL3  [true curves changed]" in out
    a, b = _oc(runs["a"]), _oc(runs["b"])
    ra = a[(a.scenario == "MTD at DL1") & (a.design == "BOIN") & (a.metric == "correct_selection_pct")].iloc[0]
    rb = b[(b.scenario == "MTD at DL1") & (b.design == "BOIN") & (b.metric == "correct_selection_pct")].iloc[0]
    line = next(ln for ln in out.splitlines() if ln.startswith("BOIN") and "Correct selection" in ln)
    from escalade.reports.diff import diff_runs
    from escalade.reports.load import load_run

    g = diff_runs(load_run(runs["a"]), load_run(runs["b"])).changes.set_index(["scenario", "design", "metric", "dose"])
    change, se = rb.value - ra.value, float(g.loc[("MTD at DL1", "BOIN", "correct_selection_pct", ""), "se_change"])
    assert f"{ra.value:.1f} ({ra.se:.1f})" in line and f"{rb.value:.1f} ({rb.se:.1f})" in line
    assert f"{change:+.1f} ({se:.1f})" in line and line.endswith("*") == (abs(change) > 2 * se)
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--flagged"]) == 0
    flagged = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("3+3 ", "BOIN "))]
    assert flagged and all(ln.endswith("*") for ln in flagged)
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--all"]) == 0
    assert "Selected as MTD (%) [DL3]" in capsys.readouterr().out


def test_diff_report_and_compare_section(runs: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "amendment"
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--report", "--format", "html", "--out", str(out)]) == 0
    raw = (tmp_path / "amendment.html").read_text(encoding="utf-8")
    assert "<DL4>" not in raw and "MTD at &lt;DL4&gt; &amp; top" in raw
    assert "designs[BOIN].params.cutoff_eli" in raw and 'class="flag"' in raw
    assert "overstates their standard error" in html.unescape(raw) and "paired trial by trial" in raw
    from escalade.reports.diff import diff_context, diff_runs
    from escalade.reports.load import load_run

    ctx = diff_context(diff_runs(load_run(runs["a"]), load_run(runs["b"])))
    assert f"{ctx['n_flagged']} of {ctx['n_compared']} compared" in raw


def test_diff_of_a_missing_run_is_a_one_line_error(runs: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs["a"]), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope: no such run directory" in err and err.strip().count("\n") == 0


def test_report_with_compare_adds_the_changes_section(runs: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from escalade.reports import appendix
    from escalade.reports.load import load_run

    monkeypatch.setattr(appendix.plots, "png_bytes", lambda fig: b"\x89PNG")  # figures are tested elsewhere
    from escalade.reports.diff import diff_runs

    b = load_run(runs["b"])
    page = appendix.render_html(b, compare=diff_runs(load_run(runs["a"]), b))
    assert '<section id="changes" class="major">' in page and "7. Changes from the previous run" in page
    assert page.index('id="reproducibility"') < page.index('id="changes"')
    manifest = json.loads((runs["b"] / "manifest.json").read_text())
    assert html.escape(manifest["scenarios"][4]["name"]) in page
