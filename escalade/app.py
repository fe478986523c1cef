"""The design explorer: a local Shiny for Python application over the Python API (``escalade app``).

The page holds one ``escalade.Study``; every edit (settings, doses, a design's parameters, a scenario's true
curves) makes a new study with ``Study.replace`` / ``Study.with_scenario``, so it is checked by the study file
loader and a bad value shows the loader's one-line error in the page. The decision table and dose paths of the
chosen design come from ``escalade.designs`` (``decision_table``, ``paths``); a simulation is ``Study.run`` in a
worker thread with a progress bar and a cancel button; the tables are ``Run.table`` and ``Run.compare``
(paired standard errors: the designs see the same virtual patients). The study YAML
the page downloads is ``Study.to_yaml``: ``escalade run`` of it gives the results hash shown in the page.

Shiny for Python: https://shiny.posit.co/py/ (its conventions follow R Shiny, Chang et al. 2024).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from escalade.api import Run, RunCancelled, Study
from escalade.scenarios.errors import EscaladeError

__all__ = ["make_app", "serve"]

#: Metrics offered first in the results table (the others follow in the run's order).
_FIRST_METRICS = ("correct_selection_pct", "acceptable_selection_pct", "select_none_pct",
                  "overdose_selection_pct", "patients_at_mtd_pct", "patients_above_mtd", "sample_size", "dlts",
                  "early_stop_pct", "duration_days")

#: Plain-language labels of common metrics in the metric menu (the value sent is the metric's name in oc.csv,
#: defined in escalade.simulations.oc).
_LABELS = {"correct_selection_pct": "% of trials selecting the true MTD",
           "acceptable_selection_pct": "% of trials selecting an acceptable dose",
           "select_none_pct": "% of trials selecting no dose",
           "overdose_selection_pct": "% of trials selecting a dose above the true MTD",
           "patients_at_mtd_pct": "% of patients treated at the true MTD",
           "patients_above_mtd": "patients treated above the true MTD (mean per trial)",
           "sample_size": "sample size (mean per trial)", "dlts": "DLTs (mean per trial)",
           "early_stop_pct": "% of trials stopped early", "duration_days": "trial duration, days (mean)"}


def _one_line(exc: BaseException) -> str:
    """An exception as the single line the page shows (never a traceback)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if isinstance(exc, EscaladeError) else f"{type(exc).__name__}: {line}"


def _flow(value: Any) -> str:
    """A value as one line of YAML flow style (the form a design's parameters are edited in)."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()


def _num(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def make_app(study: Study) -> Any:
    """The Shiny application exploring ``study`` (a ``shiny.App``).

    Parameters
    ----------
    study
        The study the page opens with; ``Study.from_yaml`` of a file, or one built in Python.

    Raises
    ------
    ImportError
        When Shiny is not installed (``pip install 'escalade[app]'``).
    """
    from shiny import App, reactive, render, ui

    designs0 = study.design_names
    scen0 = [s.name for s in study.scenarios]
    sim0 = study.to_dict().get("simulation", {}) or {}

    sidebar = ui.sidebar(
        ui.h5("Study"),
        ui.input_numeric("target", "Target DLT rate", value=study.target, min=0.01, max=0.99, step=0.01),
        ui.input_numeric("cohort_size", "Cohort size", value=study.spec.cohort_size, min=1, step=1),
        ui.input_numeric("max_n", "Maximum sample size", value=study.spec.max_n, min=1, step=1),
        ui.h5("Simulation"),
        ui.input_numeric("n_trials", "Trials per scenario", value=int(sim0.get("n_trials", 1000)), min=1),
        ui.input_numeric("seed", "Seed", value=int(sim0.get("seed", 1)), step=1),
        ui.input_checkbox_group("run_designs", "Designs to simulate (and in the downloaded YAML)",
                                choices=designs0, selected=designs0),
        ui.input_action_button("run", "Run simulations", class_="btn-primary"),
        ui.input_action_button("cancel", "Cancel", class_="btn-outline-danger"),
        ui.output_ui("progress"),
        ui.hr(),
        ui.download_button("dl_yaml", "Study YAML"),
        ui.download_button("dl_zip", "Run directory (zip)"),
        ui.download_button("dl_appendix", "Appendix (HTML)"),
        width=300,
    )
    study_tab = ui.nav_panel(
        "Study",
        ui.layout_columns(
            ui.card(ui.card_header("True scenario curves"),
                    ui.input_select("scenario", "Scenario", choices=scen0),
                    ui.output_ui("curve_inputs"),
                    ui.output_ui("scenario_note")),
            ui.card(ui.card_header("Dose levels"),
                    ui.p("One line per dose, lowest first: label, amount, unit.", class_="text-muted small"),
                    ui.input_text_area("doses", None, value=_doses_text(study), rows=6, width="100%"),
                    ui.input_action_button("apply_doses", "Apply doses"),
                    ui.output_table("dose_table")),
            col_widths=(6, 6)),
    )
    design_tab = ui.nav_panel(
        "Designs",
        ui.layout_columns(
            ui.card(ui.card_header("Design parameters"),
                    ui.input_select("design", "Design", choices=designs0),
                    ui.output_ui("design_kind"),
                    ui.input_text_area("params", "Parameters (YAML mapping; unset ones take the design's "
                                                 "defaults)", value="", rows=4, width="100%"),
                    ui.input_action_button("apply_params", "Apply parameters"),
                    ui.h6("Decision table", class_="mt-3"),
                    ui.p("Per number of patients n at the current dose: escalate if DLTs <= escalate_if_dlt_le, "
                         "de-escalate if DLTs >= deescalate_if_dlt_ge, eliminate the dose and those above if "
                         "DLTs >= eliminate_if_dlt_ge.", class_="text-muted small"),
                    ui.output_table("dtable"),
                    ui.output_text("no_table")),
            ui.card(ui.card_header("Dose paths of the first cohorts"),
                    ui.p("Every outcome of the next cohorts from the start (N: no DLT, T: DLT; E/B: response "
                         "without/with a DLT), the decision after each, and its probability under the scenario "
                         "chosen on the Study tab.", class_="text-muted small"),
                    ui.input_numeric("n_cohorts", "Cohorts", value=2, min=1, max=4),
                    ui.output_code("paths")),
            col_widths=(6, 6)),
    )
    results_tab = ui.nav_panel(
        "Results",
        ui.output_ui("run_info"),
        ui.input_select("metric", "Operating characteristic", choices={m: f"{_LABELS[m]} ({m})"
                                                                       for m in _FIRST_METRICS}, width="480px"),
        ui.p("Each cell: estimate (Monte Carlo standard error) over the simulated trials.",
             class_="text-muted small"),
        ui.output_table("oc_table"),
        ui.h6("Selection of each dose (shaded: the true target dose), with 95% intervals", class_="mt-3"),
        ui.output_plot("selection_plot", height="1100px"),
    )
    compare_tab = ui.nav_panel(
        "Compare",
        ui.layout_columns(ui.input_select("cmp_a", "Design", choices=designs0,
                                          selected=designs0[1] if len(designs0) > 1 else designs0[0]),
                          ui.input_select("cmp_b", "minus design", choices=designs0, selected=designs0[0]),
                          col_widths=(6, 6)),
        ui.p("Paired differences (first design minus second) in the operating characteristic chosen on the "
             "Results tab, on the same virtual patients: 'se' is the paired Monte Carlo standard error, "
             "'se_unpaired' what two independent simulations would give; z = difference / se.",
             class_="text-muted small"),
        ui.output_table("compare_table"),
    )
    page = ui.page_sidebar(
        sidebar,
        ui.div(ui.output_text("error"), id="error-line", class_="text-danger fw-bold"),
        ui.navset_tab(study_tab, design_tab, results_tab, compare_tab, id="tabs"),
        title=f"escalade design explorer: {study.title}",
    )

    def server(input: Any, output: Any, session: Any) -> None:
        current: reactive.Value[Study] = reactive.value(study)
        error_value = reactive.value("")
        last_run: reactive.Value[Run | None] = reactive.value(None)
        progress_state: dict[str, Any] = {"done": 0, "total": 0, "trials": 0, "running": False, "t0": 0.0}
        cancel_event = threading.Event()
        tmp = Path(tempfile.mkdtemp(prefix="escalade-app-"))

        def attempt(make: Any) -> None:
            try:
                new = make(current.get())
            except (EscaladeError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
                error_value.set(_one_line(exc))
                return
            error_value.set("")
            current.set(new)

        @render.text
        def error() -> str:
            return error_value.get()

        # -- study settings -------------------------------------------------------------------------------------
        @reactive.effect
        @reactive.event(input.target, input.cohort_size, input.max_n, ignore_init=True)
        def _settings() -> None:
            vals = {"target": input.target(), "cohort_size": input.cohort_size(), "max_n": input.max_n()}
            if any(v is None for v in vals.values()):
                error_value.set("study settings: every field needs a number")
                return
            attempt(lambda s: s.replace(**vals))

        @reactive.effect
        @reactive.event(input.n_trials, input.seed, ignore_init=True)
        def _simulation() -> None:
            n, seed = input.n_trials(), input.seed()
            if n is None or seed is None:
                error_value.set("simulation: trials per scenario and seed need whole numbers")
                return

            def change(s: Study) -> Study:
                sim = dict(s.to_dict().get("simulation") or {})
                sim.update(n_trials=int(n), seed=int(seed))
                return s.replace(simulation=sim)
            attempt(change)

        # -- scenarios ------------------------------------------------------------------------------------------
        @render.ui
        def curve_inputs() -> Any:
            name = input.scenario()
            with reactive.isolate():
                s = current.get()
            sc = next((x for x in s.scenarios if x.name == name), None)
            if sc is None:
                return ui.p("no scenario")
            rows = []
            for i, d in enumerate(s.doses):
                cells = [ui.input_numeric(f"p_dlt_{i + 1}", f"{d.label}: P(DLT)", value=float(sc.p_dlt[i]),
                                          min=0, max=1, step=0.01)]
                if sc.p_response is not None:
                    cells.append(ui.input_numeric(f"p_response_{i + 1}", f"{d.label}: P(response)",
                                                  value=float(sc.p_response[i]), min=0, max=1, step=0.01))
                rows.append(ui.layout_columns(*cells, col_widths=(6, 6)))
            return ui.TagList(*rows, ui.input_action_button("apply_curve", "Apply curves", class_="btn-primary"))

        @render.ui
        def scenario_note() -> Any:
            s = current.get()
            sc = next((x for x in s.scenarios if x.name == input.scenario()), None)
            if sc is None:
                return None
            true_mtd = [d.label for d, p in zip(s.doses, sc.p_dlt, strict=True) if abs(p - s.target) < 1e-9]
            note = sc.description or ""
            return ui.p(note + (f" Dose at the target DLT rate: {', '.join(true_mtd)}." if true_mtd else ""),
                        class_="text-muted small")

        @reactive.effect
        @reactive.event(input.apply_curve)
        def _curve() -> None:
            s = current.get()
            name = input.scenario()
            sc = next((x for x in s.scenarios if x.name == name), None)
            if sc is None:
                return
            k = len(s.doses)
            fields: dict[str, Any] = {"p_dlt": [input[f"p_dlt_{i + 1}"]() for i in range(k)]}
            if sc.p_response is not None:
                fields["p_response"] = [input[f"p_response_{i + 1}"]() for i in range(k)]
            for key, vals in fields.items():
                for i, v in enumerate(vals):
                    if v is None:
                        error_value.set(f"scenario {name!r}: {key}[{i}] is empty; enter a probability in [0, 1]")
                        return
            attempt(lambda st: st.with_scenario(name, **fields))

        # -- doses -----------------------------------------------------------------------------------------------
        @reactive.effect
        @reactive.event(input.apply_doses)
        def _doses() -> None:
            try:
                doses = _parse_doses(input.doses())
            except ValueError as exc:
                error_value.set(str(exc))
                return
            attempt(lambda s: s.replace(doses=doses))

        @render.table
        def dose_table() -> Any:
            import pandas as pd

            s = current.get()
            return pd.DataFrame({"level": range(1, len(s.doses) + 1), "label": [d.label for d in s.doses],
                                 "amount": [f"{d.amount:.4g}" if d.amount is not None else "" for d in s.doses],
                                 "unit": [d.unit or "" for d in s.doses]})

        # -- designs ----------------------------------------------------------------------------------------------
        @reactive.effect
        def _show_params() -> None:
            name = input.design()
            with reactive.isolate():
                entry = next((d for d in current.get().to_dict()["designs"] if d.get("name") == name), None)
            ui.update_text_area("params", value=_flow(entry.get("params") or {}) if entry else "")

        @render.ui
        def design_kind() -> Any:
            entry = next((d for d in current.get().to_dict()["designs"] if d.get("name") == input.design()), None)
            return ui.p(f"kind: {entry['design']}" if entry else "", class_="text-muted small")

        @reactive.effect
        @reactive.event(input.apply_params)
        def _params() -> None:
            name = input.design()
            try:
                params = yaml.safe_load(input.params() or "{}") or {}
            except yaml.YAMLError as exc:
                error_value.set(f"designs[{name}].params: not YAML ({_one_line(exc)}); write e.g. "
                                "{cutoff_eli: 0.95, extrasafe: true}")
                return
            if not isinstance(params, dict):
                error_value.set(f"designs[{name}].params: must be a mapping, e.g. {{cutoff_eli: 0.95}}")
                return

            def change(s: Study) -> Study:
                entries = s.to_dict()["designs"]
                for d in entries:
                    if d.get("name") == name:
                        d["params"] = params
                return s.replace(designs=entries)
            attempt(change)

        def _decision() -> Any:
            s = current.get()
            try:
                return s.design(input.design()).decision_table(), ""
            except (EscaladeError, ValueError, NotImplementedError, TypeError, AttributeError) as exc:
                return None, _one_line(exc)

        @render.table
        def dtable() -> Any:
            table, _ = _decision()
            return table

        @render.text
        def no_table() -> str:
            table, why = _decision()
            return "" if table is not None else f"No decision table for this design ({why})."

        @render.code
        def paths() -> str:
            s = current.get()
            n = input.n_cohorts() or 2
            try:
                tree = s.design(input.design()).paths(int(min(max(n, 1), 4)), scenario=input.scenario())
                return f"Under scenario {input.scenario()!r}:\n" + tree.text()
            except (EscaladeError, ValueError, NotImplementedError, TypeError) as exc:
                return f"No dose paths: {_one_line(exc)}"

        # -- running ----------------------------------------------------------------------------------------------
        def chosen_study() -> Study:
            """The study with the ticked designs only: what is run and downloaded (the page's study file)."""
            s = current.get()
            chosen = list(input.run_designs() or [])
            if not chosen:
                raise ValueError("Designs to simulate: tick at least one design")
            if chosen == s.design_names:
                return s
            return s.replace(designs=[d for d in s.to_dict()["designs"] if d.get("name") in chosen])

        @reactive.extended_task
        async def simulate(s: Study) -> Run:
            def progress(done: int, total: int, trials: int) -> None:
                progress_state.update(done=done, total=total, trials=trials)

            return await asyncio.to_thread(lambda: s.run(progress=progress, cancel=cancel_event, jobs=1))

        @reactive.effect
        @reactive.event(input.run)
        def _run() -> None:
            if progress_state["running"]:
                return
            try:
                s = chosen_study()
            except (EscaladeError, ValueError) as exc:
                error_value.set(_one_line(exc))
                return
            error_value.set("")
            cancel_event.clear()
            progress_state.update(done=0, total=0, trials=0, running=True, t0=time.monotonic())
            simulate(s)

        @reactive.effect
        @reactive.event(input.cancel)
        def _cancel() -> None:
            cancel_event.set()

        @reactive.effect
        def _finished() -> None:
            status = simulate.status()
            if status == "success":
                progress_state["running"] = False
                last_run.set(simulate.result())
            elif status == "error":
                progress_state["running"] = False
                try:
                    simulate.result()
                except RunCancelled:
                    error_value.set("Simulation cancelled; the previous results (if any) are still shown.")
                except Exception as exc:  # noqa: BLE001 - shown as one line in the page
                    error_value.set(_one_line(exc))

        @render.ui
        def progress() -> Any:
            status = simulate.status()
            if status == "running":
                reactive.invalidate_later(0.5)
                done, total = progress_state["done"], progress_state["total"]
                pct = int(100 * done / total) if total else 0
                secs = time.monotonic() - progress_state["t0"]
                if not total:
                    return ui.p(f"Starting the simulation ... {secs:.0f} s", id="run-progress",
                                class_="small text-muted mt-2")
                return ui.div(
                    ui.div(ui.div(f"{pct}%", class_="progress-bar", role="progressbar",
                                  style=f"width: {max(pct, 3)}%"), class_="progress mt-2"),
                    ui.p(f"{done} of {total} work units, {progress_state['trials']} trials, {secs:.0f} s",
                         class_="small text-muted"), id="run-progress")
            run = last_run.get()
            if run is not None:
                return ui.p(f"Done: {run.manifest.get('n_trials')} trials per scenario.", id="run-done",
                            class_="small text-success mt-2")
            return None

        @render.ui
        def run_info() -> Any:
            run = last_run.get()
            if run is None:
                return ui.p("No results yet: press 'Run simulations' in the sidebar.", class_="text-muted")
            m = run.manifest
            try:
                same = run.study == chosen_study()
            except (EscaladeError, ValueError):
                same = False
            stale = "" if same else (
                " The study has changed since this run: press 'Run simulations' again to update the tables.")
            return ui.p(f"{m.get('n_trials')} trials per scenario, seed {m.get('seed')}. Results hash ",
                        ui.code(run.results_sha256, id="results-hash"),
                        " (escalade run of the downloaded study YAML gives the same)." + stale)

        @reactive.effect
        def _metrics() -> None:
            run = last_run.get()
            if run is None:
                return
            have = list(dict.fromkeys(run.oc.loc[run.oc["dose"].astype(str) == "", "metric"]))
            choices = [m for m in _FIRST_METRICS if m in have] + [m for m in have if m not in _FIRST_METRICS]
            with reactive.isolate():
                sel = input.metric()
            labelled = {m: f"{_LABELS[m]} ({m})" if m in _LABELS else m for m in choices}
            ui.update_select("metric", choices=labelled, selected=sel if sel in choices else choices[0])
            names = run.study.design_names if run.study is not None else []
            if names:
                ui.update_select("cmp_a", choices=names, selected=names[1] if len(names) > 1 else names[0])
                ui.update_select("cmp_b", choices=names, selected=names[0])

        @render.table
        def oc_table() -> Any:
            run = last_run.get()
            if run is None:
                return None
            try:
                value = run.table(input.metric())
                se = run.table(input.metric(), se=True)
            except KeyError as exc:
                error_value.set(_one_line(exc))
                return None
            cells = value.copy().astype(object)
            for c in value.columns:
                cells[c] = [f"{_num(v)} ({_num(e)})" if e == e else _num(v) for v, e in zip(value[c], se[c],
                                                                                             strict=True)]
            cells.columns.name = None
            return cells.reset_index().rename(columns={"scenario": "Scenario"})

        @render.plot
        def selection_plot() -> Any:
            run = last_run.get()
            if run is None:
                return None
            return run.plot.selection()

        @render.table
        def compare_table() -> Any:
            run = last_run.get()
            if run is None or input.cmp_a() == input.cmp_b():
                return None
            try:
                out = run.compare(input.cmp_a(), input.cmp_b(), metric=input.metric())
            except KeyError as exc:
                error_value.set(_one_line(exc))
                return None
            cols = [c for c in ("scenario", "design", "versus", "metric", "difference", "se", "se_unpaired", "z")
                    if c in out.columns]
            return out[cols].round({"difference": 2, "se": 2, "se_unpaired": 2, "z": 1})

        # -- downloads ----------------------------------------------------------------------------------------------
        @render.download(filename="study.yaml")
        def dl_yaml() -> Any:
            try:
                text = chosen_study().to_yaml()
            except (EscaladeError, ValueError) as exc:
                error_value.set(_one_line(exc))
                return
            yield text

        @render.download(filename="escalade-run.zip")
        def dl_zip() -> Any:
            run = last_run.get()
            if run is None:
                error_value.set("Run directory: run the simulations first")
                return None
            where = Path(tempfile.mkdtemp(dir=tmp))
            run.save(where / "run")
            return shutil.make_archive(str(where / "escalade-run"), "zip", where / "run")

        @render.download(filename="appendix.html")
        def dl_appendix() -> Any:
            run = last_run.get()
            if run is None:
                error_value.set("Appendix: run the simulations first")
                return None
            where = Path(tempfile.mkdtemp(dir=tmp))
            try:
                files = run.report(where / "appendix", fmt="html")
            except EscaladeError as exc:
                error_value.set(_one_line(exc))
                return None
            return str(files[0])

        session.on_ended(lambda: (cancel_event.set(), shutil.rmtree(tmp, ignore_errors=True)))

    return App(page, server)


def _doses_text(study: Study) -> str:
    return "\n".join(", ".join(x for x in (d.label, f"{d.amount:.15g}" if d.amount is not None else "", d.unit or "")
                               if x != "") for d in study.doses)


def _parse_doses(text: str) -> list[dict[str, Any]]:
    """Dose lines ``label, amount, unit`` as study file entries (``ValueError`` naming the line)."""
    out: list[dict[str, Any]] = []
    for n, line in enumerate(io.StringIO(text or ""), start=1):
        parts = [p.strip() for p in line.split(",", 2)]
        if not parts or not parts[0]:
            continue
        entry: dict[str, Any] = {"label": parts[0]}
        if len(parts) > 1 and parts[1]:
            try:
                entry["amount"] = float(parts[1])
            except ValueError:
                raise ValueError(f"Dose levels, line {n}: amount {parts[1]!r} is not a number; "
                                 "write 'DL1, 1e5, cells/kg'") from None
        if len(parts) > 2 and parts[2]:
            entry["unit"] = parts[2]
        out.append(entry)
    if not out:
        raise ValueError("Dose levels: none given; write one line per dose, e.g. 'DL1, 1e5, cells/kg'")
    return out


def serve(study: Study, *, port: int = 8050, launch_browser: bool = True) -> None:
    """Serve the explorer of ``study`` on http://127.0.0.1:PORT (loopback only) until interrupted."""
    import uvicorn

    app = make_app(study)
    if launch_browser:
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(f"http://127.0.0.1:{port}",)).start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
