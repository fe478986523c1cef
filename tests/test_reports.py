"""The simulation appendix: content equal to oc.csv, every section, escaping, Chromium, PDF, errors.

The shipped CAR-T example is run once with 200 trials and reported in every
format; the tests then read the files back the way a reader would (HTML parsed,
PDF through ``pdftotext``, the page rendered by headless Chromium).
"""

from __future__ import annotations

import base64
import doctest
import html
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from conftest import EXAMPLE, load_reference
from escalade.cli import main
from escalade.reports.load import RunData

TRIALS = 100
SECTION_IDS = ["summary", "methods", "scenarios", "oc", "figures", "reproducibility"]
HOSTILE_SCENARIO = '<script>alert(1)</script> & "quotes"'
HOSTILE_DESIGN = "<img src=x onerror=alert(2)>"
HOSTILE_TITLE = "Study <b>bold</b> & 'apostrophes' $x^2$"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# --------------------------------------------------------------------------------------------- helpers


class _Page(HTMLParser):
    """Collects sections, table cells with data attributes, images, scripts and text of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.cells: list[tuple[dict[str, str], str]] = []
        self.images: list[str] = []
        self.scripts = 0
        self.links: list[str] = []
        self.text: list[str] = []
        self._cell: dict[str, str] | None = None
        self._buf: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "td":
            self._cell = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
            self._buf = []
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "script":
            self.scripts += 1
        elif tag in ("link", "iframe", "object", "embed"):
            self.links.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append((self._cell, "".join(self._buf).strip()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._buf.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


_DECIMALS = {"dlt_rate": 3, "orr_selected": 3, "duration_days": 0, "duration_days_median": 0,
             "duration_days_p10": 0, "duration_days_p90": 0, "deaths": 2}


def _decimals(metric: str) -> int:
    """Decimals of a metric: the table above; CAR-T rates at the selected dose (true probabilities) 3."""
    if metric in _DECIMALS:
        return _DECIMALS[metric]
    if metric.endswith("_selected") and not metric.startswith(("median_efs", "expansion")):
        return 3
    return 1


def _expected_text(value: float, se: float, exact: bool, metric: str) -> str:
    """The report's documented convention, written out independently of reports/formatting.py."""
    d = _decimals(metric)
    if not math.isfinite(value):
        return "n/a"
    zero = f"{0:.{d}f}"

    def num(x: float) -> str:
        text = f"{x:.{d}f}"
        return zero if float(text) == 0 else text  # no "-0.0"

    return f"{num(value)} ({'exact' if exact else num(se)})"


def _run(study: Path, out: Path, *extra: str) -> Path:
    rc = main(["run", str(study), "--trials", str(TRIALS), "--jobs", "1", "--out", str(out), "--no-progress", *extra])
    assert rc == 0
    return out


def _hostile_study(tmp: Path) -> Path:
    """A small study whose title, scenario, design and unit strings try to inject markup, mathtext, formulas."""
    q = json.dumps
    text = f"""
study: {{title: {q(HOSTILE_TITLE)}, target: 0.3, cohort_size: 3, max_n: 18, start_dose: 1}}
doses:
  - {{label: DL1, amount: 1.0e+5, unit: {q("cells/kg <i>&amp;</i> $")}}}
  - {{label: DL2, amount: 3.0e+5, unit: {q("cells/kg <i>&amp;</i> $")}}}
  - {{label: DL3, amount: 1.0e+6, unit: {q("cells/kg <i>&amp;</i> $")}}}
designs:
  - {{name: "3+3", design: "3+3"}}
  - {{name: {q(HOSTILE_DESIGN)}, design: boin}}
scenarios:
  - name: {q(HOSTILE_SCENARIO)}
    description: {q("</p><script>alert(3)</script>")}
    p_dlt: [0.10, 0.30, 0.50]
    p_response: [0.20, 0.40, 0.50]
  - name: {q('=HYPERLINK("http://example.com")')}
    p_dlt: [0.05, 0.15, 0.30]
    p_response: [0.20, 0.40, 0.50]
simulation: {{n_trials: 100, seed: 3}}
"""
    path = tmp / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _pdftotext(pdf: Path) -> str:
    exe = shutil.which("pdftotext")
    if exe is None:
        if IN_CI:
            pytest.fail("pdftotext (Debian package poppler-utils) is required in CI to check the PDF's text: "
                        "apt-get install -y poppler-utils")
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return subprocess.run([exe, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shipped example, run with 200 trials and reported as HTML, PDF and XLSX through the CLI."""
    root = tmp_path_factory.mktemp("example")
    study = root / EXAMPLE.name  # a snapshot: the shipped file may be edited while the tests run
    shutil.copyfile(EXAMPLE, study)
    run = _run(study, root / "run")
    rc = main(["report", str(run), "--format", "both", "--xlsx"])
    assert rc == 0
    return {"run": run, "html": run / "report.html", "pdf": run / "report.pdf", "xlsx": run / "report.xlsx",
            "oc": pd.read_csv(run / "oc.csv", keep_default_na=False, na_values={"value": [""], "se": [""]}),
            "paired": pd.read_csv(run / "paired.csv"),
            "manifest": json.loads((run / "manifest.json").read_text())}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A study whose title, scenario, design and unit try to inject markup, mathtext and formulas."""
    root = tmp_path_factory.mktemp("hostile")
    run = _run(_hostile_study(root), root / "run")
    assert main(["report", str(run), "--format", "html", "--xlsx"]) == 0
    return {"run": run, "html": run / "report.html", "xlsx": run / "report.xlsx"}


# --------------------------------------------------------------------------------------------- the example


def test_report_writes_every_format_atomically(example: dict, capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("html", "pdf", "xlsx"):
        assert example[key].is_file() and example[key].stat().st_size > 10_000, key
    assert example["pdf"].read_bytes()[:5] == b"%PDF-"
    assert example["xlsx"].read_bytes()[:2] == b"PK"
    assert not list(example["run"].glob(".tmp-*")), "a temporary file was left behind"


def test_sections_are_all_present_in_order(example: dict) -> None:
    page = _parse(example["html"])
    assert [s for s in page.sections if s in SECTION_IDS] == SECTION_IDS
    text = " ".join(page.text)
    for title in ("1. Summary", "2. Methods", "3. Scenarios", "4. Operating characteristics", "5. Safety profile",
                  "6. Efficacy depth", "7. Figures", "8. Reproducibility"):
        assert title in text
    n_scen = len(example["manifest"]["scenarios"])
    assert sum(1 for i in page.ids if re.fullmatch(r"oc-\d+", i)) == n_scen
    assert sum(1 for i in page.ids if re.fullmatch(r"fig-scenario-\d+", i)) == n_scen
    assert {"fig-summary", "fig-scenarios", "scenarios-table", "conclusion", "regenerate"} <= set(page.ids)


def test_html_is_self_contained(example: dict) -> None:
    raw = example["html"].read_text(encoding="utf-8")
    page = _parse(example["html"])
    assert page.scripts == 0 and page.links == []
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    # nothing to fetch: no URL in any src/href, no @import or url() in the stylesheet
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", raw, re.I)
    assert "@import" not in raw and "url(" not in raw
    assert "Content-Security-Policy" in raw


def test_every_number_in_the_tables_equals_oc_csv(example: dict) -> None:
    oc = example["oc"]
    idx = {(r.scenario, r.design, r.metric, r.dose): r for r in oc.itertuples(index=False)}
    cells = [(k, t) for k, t in _parse(example["html"]).cells if "metric" in k and "versus" not in k]
    checked = means = 0
    for key, text in cells:
        r = idx.get((key["scenario"], key["design"], key["metric"], key["dose"]))
        if r is None:
            assert text == "\u2014", (key, text)  # a stop reason that never occurred
            continue
        if key.get("shown") == "mean":  # the get.oc-style overview: the mean alone
            assert text == _expected_text(r.value, r.se, bool(r.exact), r.metric).split(" (")[0], (key, text)
            means += 1
            continue
        assert text == _expected_text(r.value, r.se, bool(r.exact), r.metric), (key, text)
        checked += 1
    n_s, n_d = len(example["manifest"]["scenarios"]), len(example["manifest"]["designs"])
    n_doses = len(example["manifest"]["doses"])
    # per scenario x design: selection (doses + none), patients, DLTs per dose, and 13 summary rows
    assert checked >= n_s * n_d * (3 * n_doses + 1 + 13)
    # the overview: selection at every dose and none, patients at every dose and N, per scenario x design
    assert means == n_s * n_d * (2 * n_doses + 2)


def test_a_few_cells_by_hand(example: dict) -> None:
    """Spot checks that do not go through the data attributes: the value shown next to its row label."""
    raw = html.unescape(example["html"].read_text(encoding="utf-8"))
    oc = example["oc"]
    row = oc[(oc.scenario == "MTD at DL3") & (oc.design == "BOIN") & (oc.metric == "correct_selection_pct")].iloc[0]
    block = raw[raw.index("4.3 MTD at DL3"):raw.index("4.4 MTD at DL4")]
    line = block[block.index("Correct selection of the true MTD (%)"):][:400]
    assert f"{row.value:.1f} ({row.se:.1f})" in line
    row = oc[(oc.scenario == "All doses safe") & (oc.design == "3+3") & (oc.metric == "sample_size")].iloc[0]
    block = raw[raw.index("4.6 All doses safe"):]
    assert f"{row.value:.1f} ({row.se:.1f})" in block[block.index("Sample size (mean)"):][:300]


def test_paired_differences_equal_paired_csv(example: dict) -> None:
    p = example["paired"]
    p = p[p.versus == example["manifest"]["designs"][0]["name"]]  # the tables compare with the first design
    cells = [(k, t) for k, t in _parse(example["html"]).cells if "versus" in k and k.get("table") != "conclusion"]
    assert len(cells) == len(p)
    for key, text in cells:
        r = p[(p.scenario == key["scenario"]) & (p.design == key["design"]) & (p.metric == key["metric"])].iloc[0]
        d = _decimals(r.metric)
        sign, value, se, _ = re.fullmatch(r"([+\-\u00b1])([\d.]+) \(([\d.]+)\)( \*)?", text).groups()
        value = -float(value) if sign == "-" else float(value)
        assert abs(value - r.difference) <= 0.5 * 10 ** -d + 1e-9
        assert (sign == "\u00b1") == (f"{abs(r.difference):.{d}f}" == f"{0:.{d}f}")
        se = float(se)
        assert abs(se - r.se) <= 0.5 * 10 ** -d + 1e-9
        assert text.endswith("*") == (abs(r.difference) > 2 * r.se), (key, text)


def _signed(v: float, d: int = 1) -> str:
    text = f"{v:+.{d}f}"
    return "\u00b1" + text[1:] if float(text) == 0 else text


def _paired_from_trials(trials: pd.DataFrame, scenario: dict, a: str, b: str, none: bool) -> tuple[float, float]:
    """Difference in correct selection a - b (percentage points) and its paired SE, from the trials file."""
    t = trials[trials.scenario == scenario["name"]]
    hit = {}
    for d in (a, b):
        sel = t[t.design == d].sort_values("trial").selected_dose
        hit[d] = sel.isna().to_numpy() if none else (sel.fillna(0).to_numpy() == scenario["true_mtd"])
    x = 100.0 * (hit[a].astype(float) - hit[b].astype(float))
    return x.mean(), x.std(ddof=1) / math.sqrt(x.size)


def test_summary_and_conclusion_come_from_the_numbers(example: dict) -> None:
    page = _parse(example["html"])
    text = " ".join(page.text)
    man = example["manifest"]
    designs = [d["name"] for d in man["designs"]]
    for fact in (f"{TRIALS} (Monte Carlo simulation)", str(man["seed"]), man["escalade_version"]):
        assert fact in text
    for d in man["designs"]:
        assert f"{d['name']} ({d['design']})" in text
    oc = example["oc"]
    target = man["target"]
    raw = html.unescape(example["html"].read_text(encoding="utf-8"))
    block = raw[raw.index('id="conclusion-table"'):raw.index('id="conclusion"')]
    rows = _rows(block)
    trials = pd.read_parquet(example["run"] / "trials.parquet")
    ref = designs[0]
    wins = {d: 0 for d in designs}
    for s in man["scenarios"]:
        none = min(s["p_dlt"]) > target  # every dose too toxic: the correct answer is to select none
        metric = "select_none_pct" if none else "correct_selection_pct"
        v = oc[(oc.scenario == s["name"]) & (oc.metric == metric) & (oc.dose == "")].set_index("design").value
        order = sorted(designs, key=lambda d: (-v[d], designs.index(d)))
        best, second = order[0], order[1]
        wins[best] += 1
        row = rows[s["name"]]
        assert row[0] == ("no dose (stop)" if none else man["doses"][s["true_mtd"] - 1]["label"])
        assert row[1] == f"{best} ({v[best]:.1f})" and row[2] == f"{second} ({v[second]:.1f})"
        d, se = _paired_from_trials(trials, s, best, second, none)
        assert row[3] == f"{_signed(d)} ({se:.1f})" + (" *" if d > 2 * se else "")
        if best != ref:
            d, se = _paired_from_trials(trials, s, best, ref, none)
            assert row[4] == f"{_signed(d)} ({se:.1f})" + (" *" if abs(d) > 2 * se else "")
        flags = []
        for des in designs:
            def val(m: str) -> float:
                return float(oc[(oc.scenario == s["name"]) & (oc.design == des) & (oc.metric == m)
                                & (oc.dose == "")].value.iloc[0])
            hit = [k for k, bad in ((1, val("overdose_selection_pct") > 25), (2, val("overdose60_pct") > 10),
                                    (3, none and val("select_none_pct") < 80)) if bad]
            if hit:
                flags.append(f"{des} ({', '.join(map(str, hit))})")
        assert row[5] == ("; ".join(flags) if flags else "none")
    conc = re.sub(r"\s+", " ", next(t for t in page.text if "selected the correct answer most often" in t))
    leaders = sorted((d for d in designs if wins[d]), key=lambda d: -wins[d])
    assert f"most often was {leaders[0]} in {wins[leaders[0]]} of the {len(man['scenarios'])} scenarios" in conc
    assert len(conc.split(". ")) <= 4  # one or two plain sentences (and the Monte Carlo caveat)


def _rows(block: str) -> dict[str, list[str]]:
    """Table rows of an HTML fragment, keyed by their first cell's text."""
    rows = {}
    for line in re.findall(r"<tr>(.*?)</tr>", block, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", line, re.S)]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_methods_text_and_decision_tables(example: dict) -> None:
    raw = example["html"].read_text(encoding="utf-8")
    methods = raw[raw.index('id="methods"'):raw.index('id="scenarios"')]
    blocks = re.split(r'<div class="design-methods[^"]*" id="methods-\d+">', methods)[1:]
    designs = example["manifest"]["designs"]
    assert len(blocks) == len(designs)
    by_kind = {}
    for d, block in zip(designs, blocks):
        assert f"{d['name']}: " in html.unescape(block)
        by_kind.setdefault(d["design"], (d, html.unescape(block)))
    # BOIN: boundaries as the package prints them (validation/reference, BOIN::get.boundary(0.3, 3, 10))
    ref = load_reference("boin", "boundaries.json")["cases"]["target0.30_cs3_nc10"]["boundary_tab_at_cohort_ends"]
    boin = by_kind["boin"][1]
    assert "\u03bbe = 0.2365" in boin and "\u03bbd = 0.3585" in boin
    rows = _rows(boin)
    assert [int(v) for v in rows["Escalate if # of DLTs \u2264"]] == ref["escalate_if_ntox_le"]
    assert [int(v) for v in rows["De-escalate if # of DLTs \u2265"]] == ref["deescalate_if_ntox_ge"]
    assert [None if v == "NA" else int(v) for v in rows["Eliminate if # of DLTs \u2265"]] == ref["eliminate_if_ntox_ge"]
    assert "Stop (lowest dose) if # of DLTs \u2265" in rows  # the study sets extrasafe: true
    assert rows["cutoff_eli"][:2] == ["0.95", "study file"] and rows["p_saf"][:2] == ["0.18", "default"]
    assert "Liu S, Yuan Y. Bayesian optimal interval designs" in boin and "28-day window" in boin
    # 3+3 with de-escalation (the study's allow_deescalation: true), with its citations
    tpt = by_kind["3+3"][1]
    assert "3+3 design with de-escalation" in tpt and "Korn et al., 1994" in tpt
    assert "Storer BE. Design and analysis of phase I clinical trials" in tpt
    assert _rows(tpt)["allow_deescalation"][:2] == ["yes", "study file"]
    if "crm" in by_kind:
        d, crm = by_kind["crm"]
        assert "CRM skeleton and prior" in crm and 'generic"' not in crm
        assert [v[0] for k, v in _rows(crm).items() if k.startswith("DL")] == \
            [f"{x:.3f}" for x in d["params"]["skeleton"]]
        if d["params"].get("safety_threshold") is not None:
            assert f"> {d['params']['safety_threshold']:g} with at least" in crm
    # every shipped kind has a protocol template (tests/test_methods_tite.py covers the TITE designs and
    # BOIN12); each lists every recorded parameter, and none falls back to the generic text
    for d, block in zip(designs, blocks):
        block = html.unescape(block)
        assert "no protocol template" not in block
        assert all(k in _rows(block) for k in d["params"])


def test_scenario_table_marks_the_true_mtd(example: dict) -> None:
    cells = [(k, t) for k, t in _parse(example["html"]).cells if k.get("curve") == "P(DLT)"]
    raw = example["html"].read_text(encoding="utf-8")
    for s in example["manifest"]["scenarios"]:
        vals = [t for k, t in cells if k["scenario"] == s["name"]]
        assert vals == [f"{v:.2f}" for v in s["p_dlt"]]
        attr = f'data-scenario="{html.escape(s["name"], quote=True)}"'
        if s["true_mtd"] is None:  # every dose too toxic: no dose is marked
            assert not re.search(rf'<td class="mtd" {re.escape(attr)} data-curve="P\(DLT\)"', raw)
            continue
        label = example["manifest"]["doses"][s["true_mtd"] - 1]["label"]
        assert re.search(rf'<td class="mtd" {re.escape(attr)} data-curve="P\(DLT\)" data-dose="{label}">', raw)


def test_reproducibility_section_lists_the_manifest(example: dict) -> None:
    text = " ".join(_parse(example["html"]).text)
    man = example["manifest"]
    for fact in (man["study_sha256"], man["results_sha256"], man["versions"]["numpy"], man["command"],
                 man["platform"]["machine"], f"{man['chunk_size']}"):
        assert fact in text
    for k in man:  # every field of the manifest summarised in a table
        assert k in text
    # the manifest itself is attached, byte for byte what the run wrote (as JSON), and not printed
    raw = example["html"].read_text(encoding="utf-8")
    href = re.search(r'<a href="data:application/json;base64,([^"]+)" download="manifest.json" rel="attachment">',
                     raw)
    assert href and json.loads(base64.b64decode(href.group(1))) == man
    assert '"params_given"' not in html.unescape(raw)


def test_the_report_alone_regenerates_the_run(hostile: dict, tmp_path: Path) -> None:
    """Save the study text shown in the report, run the command shown in the report: same results hash."""
    raw = hostile["html"].read_text(encoding="utf-8")
    cmd = html.unescape(re.search(r'<pre id="regenerate">(.*?)</pre>', raw, re.S).group(1)).strip()
    study_text = html.unescape(re.search(r'<pre id="study-text">(.*?)</pre>', raw, re.S).group(1))
    man = json.loads((hostile["run"] / "manifest.json").read_text())
    argv = shlex.split(cmd)
    assert argv[:3] == ["escalade", "run", man["study_file"]]
    saved = tmp_path / "study.yaml"
    saved.write_text(study_text, encoding="utf-8")
    argv[2] = str(saved)
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    assert main(argv[1:] + ["--jobs", "1", "--no-progress"]) == 0
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert again["study_sha256"] == man["study_sha256"]
    assert again["results_sha256"] == man["results_sha256"]


def test_pdf_has_the_same_content(example: dict) -> None:
    text = re.sub(r"\s+", " ", _pdftotext(example["pdf"]))
    for title in ("1. Summary", "2. Methods", "3. Scenarios", "4. Operating characteristics", "5. Safety profile",
                  "6. Efficacy depth", "7. Figures", "8. Reproducibility", "BOIN decision table", "3+3 decision rules"):
        assert title in text, title
    oc = example["oc"]
    r = oc[(oc.scenario == "MTD at DL3") & (oc.design == "BOIN") & (oc.metric == "select_pct") & (oc.dose == "DL3")]
    assert f"{r.value.iloc[0]:.1f} ({r.se.iloc[0]:.1f})" in text
    assert example["manifest"]["study_sha256"][:40] in text.replace(" ", "")
    assert re.search(r"page 1 of (\d+)", text) and int(re.search(r"page 1 of (\d+)", text).group(1)) >= 10


def test_xlsx_holds_the_numbers(example: dict) -> None:
    from openpyxl import load_workbook

    from escalade.reports.xlsx import SHEETS

    wb = load_workbook(example["xlsx"], read_only=True)
    assert wb.sheetnames == list(SHEETS)
    rows = list(wb["Operating characteristics"].iter_rows(values_only=True))
    assert len(rows) == len(example["oc"]) + 1
    oc = example["oc"]
    first = oc.iloc[0]
    assert rows[1][:3] == (first.scenario, first.design, first.metric)
    assert rows[1][5] == pytest.approx(first.value) and rows[1][6] == pytest.approx(first.se)


# --------------------------------------------------------------------------------------------- escaping


def test_hostile_names_are_escaped(hostile: dict) -> None:
    raw = hostile["html"].read_text(encoding="utf-8")
    assert "<script" not in raw.lower()
    assert "<img src=x" not in raw and "<b>bold</b>" not in raw and "<i>&amp;</i>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;" in raw
    page = _parse(hostile["html"])
    text = "".join(page.text)
    # the names survive the round trip as text, in the body and in the data attributes
    assert HOSTILE_SCENARIO in text and HOSTILE_DESIGN in text and HOSTILE_TITLE in text
    assert any(k.get("scenario") == HOSTILE_SCENARIO for k, _ in page.cells)
    assert any(k.get("design") == HOSTILE_DESIGN for k, _ in page.cells)
    assert page.scripts == 0 and all(s.startswith("data:image/png;base64,") for s in page.images)


def test_hostile_text_is_not_a_formula_in_excel(hostile: dict) -> None:
    from openpyxl import load_workbook

    wb = load_workbook(hostile["xlsx"])
    cells = [c for row in wb["Operating characteristics"].iter_rows(min_col=1, max_col=1) for c in row
             if isinstance(c.value, str) and c.value.startswith("=")]
    assert cells and all(c.data_type == "s" for c in cells)


def test_chromium_renders_without_console_errors(hostile: dict, tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        if IN_CI:
            pytest.fail("headless Chromium is required in CI (CI is set) to check the HTML report renders: "
                        "install Debian's package with `apt-get install -y chromium`")
        pytest.skip("chromium is not installed (set CI=true to make this a failure)")
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2000",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
         hostile["html"].resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == [], "console messages while rendering the report:\n" + "\n".join(console)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_check_catches_a_script(tmp_path: Path) -> None:
    """The Chromium check can fail: an unescaped inline script is reported on the console (blocked by the CSP)."""
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed")
    from escalade.reports.templating import render

    head = render("head.html.j2", version="test")
    page = tmp_path / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><head>{head}</head><body><script>alert(1)</script></body></html>")
    proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p'}",
                           f"--screenshot={tmp_path / 'bad.png'}", "--enable-logging=stderr", "--v=0",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert any("CONSOLE" in ln and "Content Security Policy" in ln for ln in proc.stderr.splitlines())


# --------------------------------------------------------------------------------------------- variants


def test_exact_runs_show_exact_instead_of_se(tmp_path: Path) -> None:
    from escalade.reports.load import load_run
    from escalade.reports.plots import selection_allocation_figure
    from escalade.reports.tables import scenario_tables

    study = tmp_path / "small.yaml"
    study.write_text("""
study: {title: Exact, target: 0.3, cohort_size: 3, max_n: 18, start_dose: 1}
doses: [{label: DL1, amount: 1}, {label: DL2, amount: 2}, {label: DL3, amount: 3}]
designs: [{name: "3+3", design: "3+3"}, {name: BOIN, design: boin}]
scenarios:
  - {name: middle, p_dlt: [0.1, 0.3, 0.5], p_response: [0.2, 0.4, 0.5]}
simulation: {n_trials: 100, seed: 1}
""")
    run_dir = tmp_path / "exact"
    assert main(["run", str(study), "--exact", "--jobs", "1", "--out", str(run_dir), "--no-progress"]) == 0
    run = load_run(run_dir)
    s = run.scenarios[0]
    tables = scenario_tables(run, s)
    texts = [c.text for t in tables for row in t.rows for c in row if c.key.get("metric") == "select_pct"]
    oc = pd.read_csv(run_dir / "oc.csv")
    r = oc[(oc.design == "BOIN") & (oc.metric == "select_pct") & (oc.dose == "DL2")].iloc[0]
    assert bool(r.exact) and f"{r.value:.1f} (exact)" in texts
    assert not any("(" in t and "exact" not in t for t in texts)
    assert selection_allocation_figure(run, s, 0).png[:4] == b"\x89PNG"


def test_unknown_design_kind_gets_the_generic_methods(example: dict, tmp_path: Path) -> None:
    from escalade.reports.load import load_run
    from escalade.reports.methods import methods_section

    run_dir = tmp_path / "run"
    shutil.copytree(example["run"], run_dir, ignore=shutil.ignore_patterns("report.*", "units", "trials.parquet"))
    man = json.loads((run_dir / "manifest.json").read_text())
    man["designs"][1]["design"] = "mystery"
    man["designs"][1]["params"]["horizon"] = [1, 2, 3]
    (run_dir / "manifest.json").write_text(json.dumps(man))
    run = load_run(run_dir)
    sec = methods_section(run, run.designs[1], 1)
    assert not sec.specific and "mystery" in sec.paragraphs[0]
    listed = {row[0].text: row[1].text for row in sec.parameters.rows}
    assert listed["horizon"] == "1, 2, 3" and listed["cutoff_eli"] == "0.95" and listed["extrasafe"] == "yes"


# --------------------------------------------------------------------------------------------- errors


def _broken_copy(example: dict, tmp_path: Path) -> Path:
    run_dir = tmp_path / "broken"
    shutil.copytree(example["run"], run_dir, ignore=shutil.ignore_patterns("report.*", "units", "trials.parquet"))
    return run_dir


def _rehash(run_dir: Path) -> None:
    """Record the current hashes of a copied run's result files (a test that edits them on purpose)."""
    from escalade.simulations.run_files import sha256_file

    man = json.loads((run_dir / "manifest.json").read_text())
    for name in list(man["files_sha256"]):
        if (run_dir / name).is_file():
            man["files_sha256"][name] = sha256_file(run_dir / name)
    (run_dir / "manifest.json").write_text(json.dumps(man))


@pytest.mark.parametrize("damage, error, where", [
    ("missing_dir", "RunDirNotFoundError", "no such run directory"),
    ("no_manifest", "RunFileMissingError", "manifest.json: is missing"),
    ("bad_json", "RunFileCorruptError", "manifest.json: is not valid JSON (line 1"),
    ("no_oc", "RunFileMissingError", "oc.csv: is missing"),
    ("oc_column", "RunFileCorruptError", "oc.csv: lacks the column(s) se"),
    ("oc_value", "RunFileCorruptError", "oc.csv: row 2, column value: 'abc' is not a number"),
    ("oc_other_run", "RunFileCorruptError", "has no rows for scenario 'MTD at DL1'"),
    ("locked", "RunInProgressError", ".lock: an `escalade run` is writing this directory"),
])
def test_broken_run_dirs_give_one_line_errors(example: dict, tmp_path: Path, damage: str, error: str,
                                              where: str, capsys: pytest.CaptureFixture[str]) -> None:
    from escalade.reports import errors
    from escalade.reports.load import load_run

    run_dir = _broken_copy(example, tmp_path)
    oc = run_dir / "oc.csv"
    if damage == "missing_dir":
        run_dir = tmp_path / "nowhere"
    elif damage == "no_manifest":
        (run_dir / "manifest.json").unlink()
    elif damage == "bad_json":
        (run_dir / "manifest.json").write_text("{ not json")
    elif damage == "no_oc":
        oc.unlink()
    elif damage == "oc_column":
        pd.read_csv(oc).drop(columns=["se"]).to_csv(oc, index=False)
    elif damage == "oc_value":
        lines = oc.read_text().splitlines()
        parts = lines[1].split(",")
        parts[4] = "abc"
        oc.write_text("\n".join([lines[0], ",".join(parts)] + lines[2:]) + "\n")
    elif damage == "locked":
        (run_dir / ".lock").write_text("12345 somehost\n")
    elif damage == "oc_other_run":
        df = pd.read_csv(oc)
        df[df.scenario != "MTD at DL1"].to_csv(oc, index=False)
    if damage.startswith("oc_"):
        _rehash(run_dir)  # the parser behind the hash check (tests/test_oc_definitions.py: edits are refused)
    with pytest.raises(getattr(errors, error)) as info:
        load_run(run_dir)
    assert where in str(info.value) and "\n" not in str(info.value)
    assert main(["report", str(run_dir), "--format", "html"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("escalade: error: ") and err.strip().count("\n") == 0 and where in err


def test_cli_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("[1, 2")
    proc = subprocess.run([sys.executable, "-m", "escalade", "report", str(tmp_path), "--format", "html"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "manifest.json: is not valid JSON" in proc.stderr


def test_failed_render_writes_nothing(example: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from escalade.reports import appendix
    from escalade.reports.errors import ReportDependencyError
    from escalade.reports.load import load_run
    from escalade.reports.write import write_appendix

    run_dir = _broken_copy(example, tmp_path)
    (run_dir / "report.html").write_text("previous report")

    def no_pdf(html_text: str, *, source: object = "") -> bytes:
        raise ReportDependencyError(str(source), "PDF output needs WeasyPrint")

    monkeypatch.setattr(appendix, "render_pdf", no_pdf)
    monkeypatch.setattr(appendix.plots, "png_bytes", lambda fig: b"\x89PNG")  # skip the slow part
    with pytest.raises(ReportDependencyError):
        write_appendix(load_run(run_dir), fmt="both")
    assert (run_dir / "report.html").read_text() == "previous report"
    assert not (run_dir / "report.pdf").exists() and not list(run_dir.glob(".tmp-*"))


def test_output_directory_must_exist(example: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["report", str(example["run"]), "--format", "html", "--out", str(tmp_path / "no" / "such" / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "output directory does not exist" in err and str(tmp_path / "no" / "such") in err


# --------------------------------------------------------------------------------------------- pieces


def test_formatting_doctests() -> None:
    from escalade.reports import formatting

    res = doctest.testmod(formatting)
    assert res.attempted >= 3 and res.failed == 0


def test_plots_use_okabe_ito_and_are_reproducible(example: dict) -> None:
    from escalade.reports import plots
    from escalade.reports.load import load_run

    assert plots.OKABE_ITO[:3] == ("#0072B2", "#E69F00", "#009E73")
    colours = plots.design_colours(["a", "b", "c", "d", "e", "f", "g", "h", "i"])
    assert colours["a"][0] == colours["i"][0] and len({c for c, _ in colours.values()}) == 8
    many = plots.design_colours([str(k) for k in range(40)])
    assert len(set(many.values())) == 40  # colour and hatch together tell every design apart
    run = load_run(example["run"])
    one = plots.summary_figure(run).png
    assert one == plots.summary_figure(run).png and one[:4] == b"\x89PNG"


def _with_designs(example: dict, tmp_path: Path, specs: list[tuple[str, str, dict]]) -> RunData:
    """A copy of the example run whose manifest lists more designs (built by the registry, as a run records them)."""
    from escalade.design.registry import build_design, config_to_dict
    from escalade.reports.load import load_run
    from escalade.scenarios.load import load_study

    run_dir = tmp_path / "more"
    shutil.copytree(example["run"], run_dir, ignore=shutil.ignore_patterns("report.*", "units", "trials.parquet"))
    man = json.loads((run_dir / "manifest.json").read_text())
    defaults = load_study(EXAMPLE).design_defaults()
    for name, kind, params in specs:
        cfg = build_design(kind, params, defaults).config
        man["designs"].append({"name": name, "design": kind, "params_given": params,
                               "params": json.loads(json.dumps(config_to_dict(cfg), default=list))})
    (run_dir / "manifest.json").write_text(json.dumps(man))
    oc = pd.read_csv(run_dir / "oc.csv")
    extra = [oc[oc.design == "BOIN"].assign(design=name) for name, _, _ in specs]
    pd.concat([oc, *extra]).to_csv(run_dir / "oc.csv", index=False)
    _rehash(run_dir)
    return load_run(run_dir)


def test_crm_and_efftox_methods(example: dict, tmp_path: Path) -> None:
    pytest.importorskip("escalade.design.crm")
    pytest.importorskip("escalade.design.efftox")
    from escalade.design.crm import CrmConfig, CrmModel
    from escalade.reports.methods import methods_section
    from escalade.reports.optimal import optimal_doses

    skeleton = [0.08, 0.16, 0.30, 0.44, 0.57]
    run = _with_designs(example, tmp_path, [("CRM-b", "crm", {"skeleton": skeleton}),
                                            ("EffTox", "efftox", {"efficacy_hurdle": 0.3, "toxicity_hurdle": 0.35})])
    k = run.design_names.index("CRM-b")
    crm = methods_section(run, run.designs[k], k)
    assert crm.specific and "continual reassessment method" in crm.paragraphs[0]
    table = crm.decision_tables[0]
    assert [row[1].value for row in table.rows] == skeleton
    # prior 90% interval = p_k at the 5th/95th percentiles of beta ~ N(0, 1.34), empiric model
    m = CrmModel.from_config(CrmConfig(target=0.3, n_doses=5, skeleton=tuple(skeleton)))
    lo = m.ptox(1.6448536269514722 * math.sqrt(1.34))
    assert table.rows[4][2].text.startswith(f"{lo[4]:.3f} \u2013")
    k = run.design_names.index("EffTox")
    eff = methods_section(run, run.designs[k], k)
    assert eff.specific and eff.figures and eff.figures[0].png[:4] == b"\x89PNG"
    params = run.designs[k].params
    assert [row[1].value for row in eff.decision_tables[0].rows] == pytest.approx(params["prior_mean"])
    assert f"p = {params['contour_p']:.4f}" in eff.paragraphs[3]
    optimal = optimal_doses(run)
    assert optimal is not None and optimal["All doses too toxic"] is None
    for s in run.scenarios:  # the optimal dose is acceptable by the hurdles
        j = optimal[s.name]
        assert j is None or (s.p_response[j] >= 0.3 and s.p_dlt[j] <= 0.35)


def test_per_trial_values_from_trials_parquet_give_oc_csv_and_paired_csv(example: dict) -> None:
    """escalade diff pairs two runs with per-trial values read back from trials.parquet: they come from the
    same metric table that wrote oc.csv and paired.csv, so their means are oc.csv's values and their paired
    differences paired.csv's rows."""
    import math

    from escalade.reports.load import load_run
    from escalade.reports.pairing import PAIRABLE, per_trial_values

    run = load_run(example["run"])
    oc, p = example["oc"], example["paired"]
    checked = 0
    for s in run.scenarios:
        for d in run.design_names:
            for m in PAIRABLE:
                got = per_trial_values(run, s.name, d, m)
                assert got is not None
                row = oc[(oc.scenario == s.name) & (oc.design == d) & (oc.metric == m)].iloc[0]
                assert got[1].mean() == pytest.approx(row.value, abs=1e-9)
                checked += 1
    assert checked == len(run.scenarios) * len(run.design_names) * len(PAIRABLE)
    for r in p[p.metric.isin(PAIRABLE)].itertuples(index=False):
        a = per_trial_values(run, r.scenario, r.design, r.metric)[1]
        b = per_trial_values(run, r.scenario, r.versus, r.metric)[1]
        diff = a - b
        assert diff.mean() == pytest.approx(r.difference, abs=1e-9)
        assert diff.std(ddof=1) / math.sqrt(diff.size) == pytest.approx(r.se, rel=1e-6, abs=1e-9)


# --------------------------------------------------------------------------------------------- a wide study

WIDE_DESIGNS = [("TPT", "3+3", "{}"), ("TPTnodeesc", "3+3", "{allow_deescalation: false}"), ("BOIN", "boin", "{}"),
                ("BOINsafe", "boin", "{extrasafe: true}"), ("BOIN90", "boin", "{cutoff_eli: 0.90}"),
                ("CRM", "crm", "{skeleton: SK}"), ("CRMwide", "crm", "{skeleton: SK, prior_var: 2.0}"),
                ("TITEBOIN", "tite_boin", "{}"), ("BOIN12", "boin12", "{phi_e: 0.25}"),
                ("EffTox", "efftox", "{efficacy_hurdle: 0.2, toxicity_hurdle: 0.35, p_e: 0.1, p_t: 0.1, eff0: 0.4, "
                                     "tox1: 0.7, eff_star: 0.6, tox_star: 0.25}")]


def _wide_study(tmp: Path) -> Path:
    """Ten designs and twelve doses (names are whole words, so that each can be counted on its own)."""
    sk = "[0.02, 0.04, 0.06, 0.09, 0.12, 0.16, 0.20, 0.25, 0.30, 0.36, 0.42, 0.48]"
    doses = "\n".join(f"  - {{label: DL{j}, amount: {10 * j}, unit: mg}}" for j in range(1, 13))
    designs = "\n".join(f"  - {{name: {n}, design: \"{k}\", params: {p.replace('SK', sk)}}}"
                        for n, k, p in WIDE_DESIGNS)
    text = f"""
study: {{title: "Wide study", target: 0.25, cohort_size: 3, max_n: 36, start_dose: 1}}
doses:
{doses}
designs:
{designs}
scenarios:
  - name: "MTD at DL6"
    p_dlt: [0.01, 0.02, 0.04, 0.06, 0.10, 0.25, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90]
    p_response: [0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.45, 0.50, 0.55, 0.60, 0.62, 0.64]
  - name: "All doses too toxic"
    p_dlt: [0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92]
    p_response: [0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.62, 0.64, 0.66]
timing:
  accrual: {{process: poisson, rate_per_month: 2}}
simulation: {{n_trials: 20, seed: 7}}
"""
    path = tmp / "wide.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _body_text(path: Path) -> str:
    """The visible text of an HTML page's body (no head, no attributes), whitespace collapsed."""
    raw = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(raw[raw.index("<body>"):])
    return re.sub(r"\s+", " ", " ".join(page.text))


def test_wide_study_loses_no_column_in_the_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """10 designs x 12 doses: every design name appears in the PDF's text at least as often as in the HTML (a
    column run off the page would lose some; a table that continues on the next page repeats its header, so
    the PDF may have more), no table is wider than the page, and no "nan" anywhere."""
    from escalade.reports.load import load_run
    from escalade.reports.tables import PAGE_CHARS, column_widths, scenario_tables

    rc = main(["run", str(_wide_study(tmp_path)), "--trials", "20", "--jobs", "1", "--out", str(tmp_path / "run"),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 120  # the terminal tables fit 120 columns
    assert all(n in out for n, _, _ in WIDE_DESIGNS) and "DL12" in out
    assert main(["report", str(tmp_path / "run"), "--format", "both", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "report: read" in err and "figures" in err and "typesetting the PDF" in err and "done (" in err
    run = load_run(tmp_path / "run")
    for s in run.scenarios:
        for t in scenario_tables(run, s):
            assert sum(column_widths(t)) <= PAGE_CHARS or len(t.columns) <= t.keep + 1, t.title
    html_text = _body_text(tmp_path / "run" / "report.html")
    pdf_text = re.sub(r"\s+", " ", _pdftotext(tmp_path / "run" / "report.pdf"))
    for name, _, _ in WIDE_DESIGNS:
        n_html = len(re.findall(rf"\b{name}\b", html_text))
        assert n_html >= 20 and len(re.findall(rf"\b{name}\b", pdf_text)) >= n_html, name
    for text in (html_text, pdf_text):
        assert not re.search(r"\bnan\b", text, re.I)
    assert re.search(r"1\. Summary[ .]*\d+", pdf_text) and "1. 1." not in pdf_text  # numbered once, with pages


def test_no_nan_and_complete_method_tables_in_the_example(example: dict) -> None:
    """The shipped study: no "nan" in the report text; TITE-BOIN's pending table reaches the maximum sample size;
    BOIN12's scores reach it too; every TITE-BOIN, TITE-CRM and BOIN12 parameter has a meaning; EffTox shows
    its derived priors instead of "not set"."""
    text = _body_text(example["html"])
    assert not re.search(r"\bnan\b", text, re.I)
    raw = html.unescape(example["html"].read_text(encoding="utf-8"))
    max_n = 30
    tite = raw[raw.index("TITE-BOIN decisions with pending patients"):]
    tite = tite[:tite.index("</table>")]
    assert f"<th scope=\"row\" class=\"\">{max_n}</th>" in tite
    assert "BOIN12 rank-based desirability scores (RDS), n = 15 to 30" in raw
    for design in ("TITE-BOIN", "TITE-CRM", "BOIN12", "EffTox"):
        block = raw[raw.index(f"Parameters of {design}"):]
        block = block[:block.index("</table>")]
        for row in _rows(block).values():
            if len(row) == 3 and row[1] in ("default", "study file", "derived"):
                assert row[2], (design, row)  # a meaning for every design-specific parameter
        if design == "EffTox":
            assert "not set" not in block and "derived" in block


def test_exact_fallback_notes_are_grouped() -> None:
    """56 near-identical fallback notes become one line per reason and set of scenarios."""
    from escalade.cli import fallback_notes

    scen = [f"S{k}" for k in range(8)]
    fb = [{"scenario": s, "design": d, "reason": "the study simulates calendar time"}
          for d in ("3+3", "BOIN", "CRM", "EffTox", "BOIN12") for s in scen]
    fb += [{"scenario": s, "design": "TITE-BOIN", "reason": "not Markov"} for s in scen]
    fb += [{"scenario": "S0", "design": "TITE-CRM", "reason": "not Markov"}]
    lines = fallback_notes(fb, len(scen))
    assert len(lines) == 3
    assert lines[0].startswith("note: simulated, not exact (the study simulates calendar time): 3+3, BOIN, CRM, "
                               "EffTox, BOIN12 in all 8 scenarios")
    assert "TITE-BOIN in all 8 scenarios" in lines[1] and "TITE-CRM in 1 scenario: S0" in lines[2]


def test_terminal_tables_fit_and_show_every_dose(example: dict) -> None:
    """`escalade run` output: get.oc-style selection and patients per dose and the key characteristics, each
    value as in oc.csv, no line over 120 characters."""
    from escalade.cli import per_dose_table, summary_table
    from escalade.reports.load import load_run

    run = load_run(example["run"])
    text = per_dose_table(run.oc, run.scenarios, run.design_names, run.dose_labels) + "\n" + summary_table(
        run.oc, run.scenario_names, run.design_names)
    assert max(len(line) for line in text.splitlines()) <= 120
    oc = example["oc"]
    s, d = run.scenarios[2], run.design_names[1]
    sel = [f"{oc[(oc.scenario == s.name) & (oc.design == d) & (oc.metric == 'select_pct') & (oc.dose == lab)].value.iloc[0]:.1f}"
           for lab in run.dose_labels + ["none"]]
    block = text[text.index(s.name):]
    line = next(ln for ln in block.splitlines() if ln.startswith(d + " "))
    assert line.split()[1:] == sel
    assert "PCS %" in text and "none %" in text and "DLTs" in text
