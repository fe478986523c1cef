"""``escalade validate`` (issue 20): the shipped validation suite, its report, and that it can fail.

A quick run of a small subset passes and writes the report; a design broken on purpose
(BOIN's boundaries, the CRM grid posterior) fails exactly the requirements that depend on it
and no other; the reference data the suite reads are package data.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

from escalade.cli import main
from escalade.design import boin, crm
from escalade.validation import suite
from escalade.validation.report import environment_key, package_hash, run_validation

ROOT = Path(__file__).resolve().parents[1]
# cheap requirements (well under a second each): the deterministic reference comparisons
CHEAP = ["BOIN-1", "BOIN-2", "CRM-1", "CRM-2", "CRM-3", "EXACT-1", "EFFTOX-1", "EFFTOX-2", "BLRM-1"]


def _depending_on(part: str) -> set[str]:
    return {r.id for r in suite.REQUIREMENTS if part in r.depends}


def _verdicts(report: dict) -> dict[str, bool]:
    return {q["id"]: q["passed"] for q in report["requirements"]}


def test_quick_subset_passes_and_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "val"
    assert main(["validate", "--quick", "--only", *CHEAP, "CRM-4", "--out", str(out), "--no-pdf"]) == 0
    rep = json.loads((out / "validation.json").read_text())
    assert rep["passed"] and rep["mode"] == "quick" and rep["n_failed"] == 0
    assert [q["id"] for q in rep["requirements"]] == [r.id for r in suite.REQUIREMENTS if r.id in CHEAP + ["CRM-4"]]
    for q in rep["requirements"]:
        assert {"statement", "test", "tolerance", "worst", "limit", "passed", "n_comparisons"} <= set(q)
        assert q["n_comparisons"] > 0 and q["worst"] <= q["limit"]
    env = rep["environment"]
    assert len(env["package_sha256"]) == 64 and env["numpy"] and env["scipy"] and env["blas"] and env["cpu"]
    assert rep["wall_seconds"] >= 0 and rep["cpu_seconds"] >= 0
    html = (out / "validation.html").read_text()
    assert "CRM-2" in html and "Package SHA-256" in html and env["package_sha256"] in html
    sha = (out / "validation.json.sha256").read_text().split()[0]
    import hashlib

    assert hashlib.sha256((out / "validation.json").read_bytes()).hexdigest() == sha
    assert "requirements passed" in capsys.readouterr().out


def test_unknown_requirement_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--only", "BOIN-9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "BOIN-9" in err and "BOIN-1" in err


def test_a_broken_boin_boundary_fails_exactly_what_depends_on_it(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    original = boin.boin_boundaries

    def broken(target, n_max, p_saf, p_tox, cutoff_eli=0.95, offset=0.05):
        # boundaries computed for the wrong target (5 points too high), with the default p.saf and p.tox for it
        wrong = target + 0.05
        return original(wrong, n_max, 0.6 * wrong, 1.4 * wrong, cutoff_eli, offset)

    monkeypatch.setattr(boin, "boin_boundaries", broken)
    subset = [*CHEAP, "EXACT-2"]
    rep = run_validation(quick=True, only=subset)
    failed = {k for k, ok in _verdicts(rep).items() if not ok}
    # BOIN-1 compares the boundaries; EXACT-1 and EXACT-2 enumerate BOIN trials (BoinDesign reads the
    # boundaries) against escalation's and against simulation... which uses the same broken design, so
    # EXACT-2 still passes: exact and simulated agree with each other. select.mtd (BOIN-2) does not use the
    # boundaries; CRM, EffTox and BLRM do not use BOIN.
    assert failed == {"BOIN-1", "EXACT-1"}, failed
    assert failed <= _depending_on("boin")  # the report's "depends on" column names the culprit
    # and the command exits non-zero with the report saying FAIL
    monkeypatch.setattr(boin, "boin_boundaries", broken)
    assert main(["validate", "--only", "BOIN-1", "CRM-1", "--out", str(tmp_path / "v"), "--no-pdf"]) == 3
    html = (tmp_path / "v" / "validation.html").read_text()
    assert "1 of 2 requirements FAILED: BOIN-1" in html


def test_a_broken_crm_posterior_fails_the_crm_requirements_only(monkeypatch: pytest.MonkeyPatch) -> None:
    original = crm.CrmModel.posterior

    def broken(self, n, tox, prior_var=None):
        # the prior variance divided by 10 inside the posterior (sd 0.37 for 1.16): every Bayesian CRM quantity moves
        return original(self, n, tox, (self.prior_var if prior_var is None else prior_var) / 10)

    monkeypatch.setattr(crm.CrmModel, "posterior", broken)
    rep = run_validation(quick=True, only=[*CHEAP, "SBC-1"])
    failed = {k for k, ok in _verdicts(rep).items() if not ok}
    # CRM-2 (dfcrm crm fits), EXACT-1 (the CRM part of escalation's exact probabilities) and SBC-1 (the posterior
    # is no longer calibrated against the prior the data came from); getprior (CRM-1) and titecrm (CRM-3, its own
    # quadrature) do not use CrmModel.posterior.
    assert failed == {"CRM-2", "EXACT-1", "SBC-1"}, failed
    assert failed <= _depending_on("crm")


def test_sbc_band_ratio() -> None:
    rng = np.random.default_rng(1)
    ok, _ = suite.sbc_band_ratio(rng.uniform(size=1000), 10)
    bad, text = suite.sbc_band_ratio(rng.uniform(size=1000) ** 2, 10)
    assert ok <= 1.0 < bad and "band" in text
    assert suite.family_limit(1) == 3.0 and suite.family_limit(280) == pytest.approx(4.13, abs=0.01)


def test_a_requirement_that_raises_fails_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    req = next(r for r in suite.REQUIREMENTS if r.id == "CRM-1")

    def boom(ctx):
        raise RuntimeError("no skeleton")

    monkeypatch.setattr(suite, "REQUIREMENTS", (dataclasses.replace(req, check=boom),))
    (res,) = suite.run_requirements(suite.Context(quick=True))
    assert not res.passed and "RuntimeError: no skeleton" in res.error


def test_reference_data_are_package_data() -> None:
    """Every file of validation/reference/ is matched by pyproject's package-data, so pip installs it."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"]["escalade.validation"] == "validation"
    globs = cfg["package-data"]["escalade.validation"]
    files = [p.relative_to(ROOT / "validation").as_posix() for p in (ROOT / "validation" / "reference").rglob("*")
             if p.is_file()]
    assert len(files) >= 25
    missing = [f for f in files if not any(fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missing, missing
    assert suite.REFERENCE == ROOT / "validation" / "reference"


def test_environment_key_and_package_hash() -> None:
    digest, n = package_hash()
    assert len(digest) == 64 and n > 50
    env = {"package_sha256": digest, "python": "3.11", "numpy": "2", "scipy": "1", "cpu": "x", "os": "y",
           "blas": [{"internal_api": "openblas", "version": "0.3"}]}
    assert environment_key(env) == environment_key(dict(env, kernel="other"))  # the key ignores the kernel
    assert environment_key(env) != environment_key(dict(env, numpy="3"))


def test_report_finds_a_validation_of_this_environment_only(tmp_path: Path) -> None:
    from escalade.validation.report import find_validation, write_validation, write_validation_summary

    rep, line = find_validation([tmp_path])
    assert rep is None and "no validation report found" in line
    report = run_validation(quick=True, only=["BOIN-1"])
    write_validation(report, tmp_path / "validation-today", pdf=False)
    other = dict(report, environment_key="0" * 64, started="2099-01-01 00:00:00 UTC")
    write_validation(other, tmp_path / "validation-elsewhere", pdf=False)
    rep, line = find_validation([tmp_path])
    assert rep is not None and rep["started"] == report["started"] and "validation passed" in line
    (page,) = write_validation_summary(rep, tmp_path / "report-validation", pdf=False)
    assert "All 1 requirements passed" in page.read_text() and rep["json_sha256"] in page.read_text()
    (tmp_path / "validation-today" / "validation.json").unlink()
    rep, line = find_validation([tmp_path])
    assert rep is None and "none of this environment" in line
