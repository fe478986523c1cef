"""The CAR-T patient in the reports: terminal summary columns and the appendix sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from _cart_study import cart_study, plain_study
from escalade.simulations.study_run import run_study


@pytest.fixture(scope="module")
def cart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cart") / "run"
    run_study(cart_study(n_trials=60), backend="sequential", out_dir=out)
    return out


def test_terminal_summary_shows_grade_3_crs_icans_deaths_mrd_and_efs() -> None:
    from escalade.cli import summary_table

    study = cart_study(n_trials=60)
    oc = run_study(study, backend="sequential").oc
    text = summary_table(oc, ["graded"], [d.name for d in study.designs], width=400)
    for head in ("CRS>=3 %", "ICANS>=3 %", "deaths", "any death %", "EFS12@sel", "MRD-CR day28@sel",
                 "MRD-CR month3@sel"):
        assert head in text, head
    assert text.index("MRD-CR day28@sel") < text.index("MRD-CR month3@sel")  # assessment order
    row = next(line for line in text.splitlines() if line.startswith("boin"))
    assert "(" in row  # values with their Monte Carlo SE
    plain = run_study(plain_study(), backend="sequential", n_trials=50).oc
    assert "CRS" not in summary_table(plain, ["a"], ["boin"], width=400)


def test_appendix_has_safety_and_efficacy_sections(cart_run: Path) -> None:
    from escalade.reports.appendix import render_html
    from escalade.reports.load import load_run

    html = render_html(load_run(cart_run))
    assert '<h2>5. Safety profile</h2>' in html and '<h2>6. Efficacy depth</h2>' in html
    assert '<h2>7. Figures</h2>' in html and '<h2>8. Reproducibility</h2>' in html
    assert "CRS grade &gt;= 3" in html or "CRS grade >= 3" in html
    assert "True MRD-negative CR rate at day28" in html
    assert 'id="fig-safety-1"' in html and 'id="fig-mrd-1"' in html


def test_appendix_without_car_t_scenarios_keeps_its_sections(tmp_path: Path) -> None:
    from escalade.reports.appendix import render_html
    from escalade.reports.load import load_run

    run_study(plain_study(), backend="sequential", n_trials=40, out_dir=tmp_path / "run")
    html = render_html(load_run(tmp_path / "run"))
    assert "Safety profile" not in html and '<h2>5. Figures</h2>' in html and '<h2>6. Reproducibility</h2>' in html


def test_every_car_t_characteristic_has_a_written_label() -> None:
    """The appendix and the paired tables name each CAR-T characteristic in words, never by the generic
    fallback made from the metric's name ("Crs g3plus (%)", "True mrd neg cr month3 ...")."""
    from escalade.reports.formatting import metric_spec
    from escalade.simulations.study_run import run_study

    oc = run_study(cart_study(n_trials=40), backend="sequential").oc
    cart_only = set(oc.metric[oc.scenario == "graded"]) - set(oc.metric[oc.scenario != "graded"])
    assert {"crs_g3plus_pct", "deaths", "efs12_selected"} <= cart_only
    for metric in sorted(cart_only):
        fallback = metric.replace("_pct", "").replace("_", " ")
        label = metric_spec(metric).label
        assert fallback.lower() not in label.lower() or metric in ("deaths",), (metric, label)
