"""End-to-end test of the design explorer (``escalade app``) in headless Chromium from Debian's packages.

The app runs as a subprocess on a free loopback port; playwright drives /usr/bin/chromium (never a downloaded
browser). The test loads the shipped example, runs 200 trials, changes a true curve value, runs again and sees
the results table change, downloads the study YAML and checks that ``escalade run`` of it gives the results
hash shown in the page. Screenshots go to $ESCALADE_APP_SCREENSHOTS (default: the test's tmp_path).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "scenarios" / "cart_rr_heme.yaml"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEEP = ["3+3", "BOIN", "CRM"]  # the designs simulated (the others are unticked: a short test)


def _need(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must run the browser test: pip install '.[app]', apt-get install chromium)")
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path):
    try:
        import playwright  # noqa: F401
        import shiny  # noqa: F401
    except ImportError as exc:
        _need(False, f"{exc.name} is not installed")
    _need(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing")
    port = _free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "escalade", "app", str(STUDY), "--port", str(port),
                             "--no-browser"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("escalade app did not start: "
                                         + (tmp_path / "server.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _shot(page, name: str, tmp_path: Path) -> None:
    where = Path(os.environ.get("ESCALADE_APP_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"{name}.png"), full_page=True)


def _run(page, timeout_ms: int = 240_000) -> str:
    """Press Run, wait for a new results hash, return the results table's text."""
    before = page.locator("#results-hash").all_inner_texts()
    page.click("#run")
    page.wait_for_function(
        "prev => { const e = document.querySelector('#results-hash'); "
        "return e && e.innerText && e.innerText !== prev && !document.querySelector('#run-progress'); }",
        arg=before[0] if before else "", timeout=timeout_ms)
    page.wait_for_timeout(1500)  # the table and figure re-render after the hash
    return page.locator("#oc_table").inner_text()


def test_app_end_to_end(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                    headless=True, args=ARGS, accept_downloads=True,
                                                    viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(60_000)
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(server)
            page.wait_for_selector("#p_dlt_3")
            assert "escalade design explorer" in page.content()
            _shot(page, "1-study", tmp_path)

            page.fill("#n_trials", "200")
            page.press("#n_trials", "Tab")
            for box in page.locator("#run_designs input[type=checkbox]").all():
                if box.get_attribute("value") not in KEEP:
                    box.uncheck()
            page.click("a[data-value='Results']")
            first = _run(page)
            assert "MTD at DL3" in first
            hash1 = page.inner_text("#results-hash").strip()

            page.click("a[data-value='Study']")
            page.select_option("#scenario", "MTD at DL3")
            page.wait_for_selector("#p_dlt_3")
            page.wait_for_timeout(500)
            page.fill("#p_dlt_3", "0.45")
            page.press("#p_dlt_3", "Tab")
            page.click("#apply_curve")
            page.wait_for_timeout(1000)
            assert page.inner_text("#error").strip() == ""
            page.click("a[data-value='Results']")
            second = _run(page)
            hash2 = page.inner_text("#results-hash").strip()
            assert hash2 != hash1 and second != first
            _shot(page, "2-results", tmp_path)

            page.click("a[data-value='Designs']")
            page.select_option("#design", "BOIN")
            page.wait_for_timeout(1500)
            assert "escalate" in page.inner_text("#dtable").lower()
            _shot(page, "3-designs", tmp_path)
            page.click("a[data-value='Compare']")
            page.wait_for_timeout(1500)
            assert "se_unpaired" in page.inner_text("#compare_table")
            _shot(page, "4-compare", tmp_path)

            # a bad value is one line in the page, not a traceback
            page.click("a[data-value='Study']")
            page.fill("#p_dlt_2", "1.3")
            page.click("#apply_curve")
            page.wait_for_timeout(1000)
            err = page.inner_text("#error").strip()
            assert "p_dlt" in err and "\n" not in err and "Traceback" not in err
            page.fill("#p_dlt_2", "0.12")
            page.click("#apply_curve")
            page.wait_for_timeout(1000)

            with page.expect_download() as dl:
                page.click("#dl_yaml")
            yml = tmp_path / "study.yaml"
            dl.value.save_as(yml)

            # the run directory (zip) and the appendix of the last run
            with page.expect_download() as dl:
                page.click("#dl_zip")
            dl.value.save_as(tmp_path / "run.zip")
            with zipfile.ZipFile(tmp_path / "run.zip") as z:
                assert {"manifest.json", "oc.csv", "paired.csv", "trials.parquet"} <= set(z.namelist())
                assert json.loads(z.read("manifest.json"))["results_sha256"] == hash2
            with page.expect_download(timeout=120_000) as dl:
                page.click("#dl_appendix")
            dl.value.save_as(tmp_path / "appendix.html")
            assert "<html" in (tmp_path / "appendix.html").read_text(errors="replace")[:2000].lower()

            # a long run is cancelled from the page; the last results stay
            page.fill("#n_trials", "5000")
            page.press("#n_trials", "Tab")
            page.wait_for_timeout(500)
            page.click("#run")
            page.wait_for_selector("#run-progress", timeout=30_000)
            _shot(page, "5-running", tmp_path)
            page.click("#cancel")
            page.wait_for_function("() => document.querySelector('#error').innerText.includes('cancelled')",
                                   timeout=120_000)
            assert page.inner_text("#results-hash").strip() == hash2
        finally:
            ctx.close()

    data = yaml.safe_load(yml.read_text())
    assert [d["name"] for d in data["designs"]] == KEEP
    assert data["simulation"]["n_trials"] == 200
    assert next(s for s in data["scenarios"] if s["name"] == "MTD at DL3")["p_dlt"][2] == 0.45
    out = tmp_path / "cli-run"
    subprocess.run([sys.executable, "-m", "escalade", "run", str(yml), "--out", str(out), "--no-progress",
                    "--jobs", "1"], cwd=ROOT, check=True, timeout=300, capture_output=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["results_sha256"] == hash2
    shutil.rmtree(out, ignore_errors=True)
