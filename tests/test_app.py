"""The design explorer without a browser: dose lines, the app object, the ``escalade app`` command's checks.

The browser test is tests/test_app_browser.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.cli import main

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "scenarios" / "cart_rr_heme.yaml"


def test_dose_lines_round_trip():
    from escalade.api import Study
    from escalade.app import _doses_text, _parse_doses

    study = Study.from_yaml(STUDY)
    doses = _parse_doses(_doses_text(study))
    assert [d["label"] for d in doses] == [d.label for d in study.doses]
    assert [d["amount"] for d in doses] == [d.amount for d in study.doses]
    assert study.replace(doses=doses).doses == study.doses


@pytest.mark.parametrize(("text", "words"), [("DL1, 1e5\nDL2, lots, cells", "line 2: amount 'lots'"),
                                              ("\n  \n", "none given")])
def test_dose_lines_errors_name_the_line(text, words):
    from escalade.app import _parse_doses

    with pytest.raises(ValueError, match=words):
        _parse_doses(text)


def test_one_line_errors():
    from escalade.api import Study
    from escalade.app import _one_line
    from escalade.scenarios.errors import EscaladeError

    study = Study.from_yaml(STUDY)
    with pytest.raises(EscaladeError) as info:
        study.with_scenario("MTD at DL2", p_dlt=[0.1, 1.3, 0.4, 0.5, 0.6])
    line = _one_line(info.value)
    assert "p_dlt" in line and "\n" not in line
    assert _one_line(ValueError("x\ny")) == "ValueError: x"


def test_make_app_and_serve_on_loopback(monkeypatch):
    pytest.importorskip("shiny")
    import uvicorn

    from escalade.api import Study
    from escalade.app import make_app, serve

    study = Study.from_yaml(STUDY)
    assert type(make_app(study)).__name__ == "App"
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    serve(study, port=8765, launch_browser=False)
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765


def test_cli_app_checks_before_serving(capsys, tmp_path, monkeypatch):
    pytest.importorskip("shiny")
    import escalade.app

    monkeypatch.setattr(escalade.app, "serve", lambda *a, **k: pytest.fail("must not serve"))
    assert main(["app", str(tmp_path / "missing.yaml"), "--no-browser"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("escalade: error:") and "missing.yaml" in err and "\n" not in err
    assert main(["app", str(STUDY), "--port", "70000", "--no-browser"]) == 2
    assert "--port = 70000" in capsys.readouterr().err


def test_cli_app_serves_the_study(monkeypatch, capsys):
    pytest.importorskip("shiny")
    import escalade.app

    got = {}
    monkeypatch.setattr(escalade.app, "serve", lambda study, **kw: got.update(study=study, **kw))
    assert main(["app", "--port", "8123", "--no-browser"]) == 0  # no file: the shipped example
    assert got["port"] == 8123 and got["launch_browser"] is False
    assert "cart_rr_heme.yaml" in capsys.readouterr().out
    assert len(got["study"].design_names) >= 3
