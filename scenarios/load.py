"""Load and validate a study file (YAML) before any simulation.

Every error names the file, the field path, the value and what is allowed;
unknown keys get a did-you-mean suggestion. Non-monotone true curves are
allowed but logged as warnings.

Hostile input is refused before any object is built: a first pass over the
YAML events (libyaml's parser when available, else PyYAML's; both iterative)
refuses anchors/aliases (no alias "bombs"), every tag but the plain ones
(``!!python/object``, ``!!binary``, ``!!timestamp``, custom tags), duplicate
keys, numbers of more than 100 digits, nesting deeper than
``LIMITS["max_nesting"]``, lists or mappings of more than
``LIMITS["max_list_items"]`` entries and files of more than
``LIMITS["max_yaml_nodes"]`` values, each naming the field where it occurs.
Only then does ``yaml``'s safe loader build the data, in time linear in the
(now bounded) size.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from escalade.scenarios.cart import CART_SCENARIO_KEYS, parse_cart_scenario, parse_dlt_rule
from escalade.scenarios.errors import StudyError, did_you_mean
from escalade.scenarios.study import (
    CANDIDATE_RULES,
    DEFAULT_MTD_DELTA,
    LIMITS,
    MTD_DEFINITIONS,
    SELECT_RULES,
    Optimisation,
    DesignSpec,
    DoseLevel,
    Scenario,
    SimulationSettings,
    Study,
    Timing,
)

__all__ = ["load_study", "parse_study", "StudyWarning", "NonMonotoneWarning", "ZeroCurveWarning"]

log = logging.getLogger(__name__)
MISSING: Any = StudyError.MISSING  # type: ignore[attr-defined]


class StudyWarning(UserWarning):
    """Something in a study file that is allowed but probably not meant (also logged as a warning)."""


class NonMonotoneWarning(StudyWarning):
    """A true DLT curve decreases with dose (allowed, but unusual)."""


class ZeroCurveWarning(StudyWarning):
    """A true curve is 0 at every dose (allowed: e.g. a study of how designs behave with no toxicity)."""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases (they allow exponential 'YAML bombs')."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "anchors and aliases (*name) are not allowed in study files; write values out",
                event.start_mark)
        return super().compose_node(parent, index)


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = {None, "!"} | {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
_LONG_NUMBER = re.compile(r"^[-+]?\.?[0-9][0-9_.,:eE+-]{100,}$")
_MAX_DIGITS = 100


class _Frame:
    __slots__ = ("is_map", "key", "index", "expect_key", "keys")

    def __init__(self, is_map: bool) -> None:
        self.is_map = is_map
        self.key: str | None = None
        self.index = -1
        self.expect_key = True
        self.keys: set[str] = set()


def _frames_path(frames: list[_Frame]) -> str:
    out = ""
    for f in frames:
        if f.is_map:
            if f.key is not None:
                out += f".{f.key}" if out else f.key
        elif f.index >= 0:
            out += f"[{f.index}]"
    return out or "file"


def _key_text(key: Any) -> str:
    """A mapping key as it may appear in a field path (printable, one line, short)."""
    text = key if isinstance(key, str) else repr(key)
    if not text.isprintable() or len(text) > 40 or not text:
        text = repr(text)[:40]
    return text


def _scan(text: str, source: str | None) -> None:
    """Refuse hazards from the YAML event stream alone, before anything is built (see the module doc)."""
    frames: list[_Frame] = []
    nodes = 0
    node_events = (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)
    for ev in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frames.pop()
            continue
        if not isinstance(ev, node_events):
            continue
        nodes += 1
        if nodes > LIMITS["max_yaml_nodes"]:
            raise StudyError(source, "file", MISSING, f"holds more than {LIMITS['max_yaml_nodes']:,} values; "
                             f"study files are limited to that many (max_yaml_nodes in LIMITS, "
                             f"escalade/scenarios/study.py)")
        if frames:
            f = frames[-1]
            if f.is_map:
                is_key, f.expect_key = f.expect_key, not f.expect_key
                if is_key:
                    f.key = _key_text(ev.value) if isinstance(ev, yaml.ScalarEvent) else "<complex key>"
                    if isinstance(ev, yaml.ScalarEvent):
                        if ev.value in f.keys:
                            raise StudyError(source, _frames_path(frames), MISSING,
                                             f"appears twice in the same mapping (line {ev.start_mark.line + 1}); "
                                             "keep one")
                        f.keys.add(ev.value)
                    if len(f.keys) > LIMITS["max_list_items"]:
                        f.key = None  # name the mapping itself
                        raise StudyError(source, _frames_path(frames), MISSING,
                                         f"has more than {LIMITS['max_list_items']} keys (max_list_items in LIMITS, "
                                         "escalade/scenarios/study.py)")
            else:
                f.index += 1
                if f.index >= LIMITS["max_list_items"]:
                    f.index = -1
                    raise StudyError(source, _frames_path(frames), MISSING,
                                     f"has more than {LIMITS['max_list_items']} entries (max_list_items in LIMITS, "
                                     "escalade/scenarios/study.py)")
        where = _frames_path(frames)
        if isinstance(ev, yaml.AliasEvent):
            raise StudyError(source, where, MISSING, f"uses the alias *{_key_text(ev.anchor)}: anchors and aliases "
                             "are not allowed in study files (they allow 'YAML bombs'); write the values out")
        if ev.tag not in _PLAIN_TAGS:
            raise StudyError(source, where, MISSING, f"has the tag {_key_text(ev.tag)}: not valid YAML for a study "
                             "file, which allows no tags; write a plain number, text, true/false, list or mapping")
        if isinstance(ev, yaml.ScalarEvent) and not ev.style and _LONG_NUMBER.match(ev.value):
            raise StudyError(source, where, MISSING, f"is a number of {len(ev.value)} digits; numbers in study "
                             f"files have at most {_MAX_DIGITS}")
        if not isinstance(ev, yaml.ScalarEvent):
            frames.append(_Frame(isinstance(ev, yaml.MappingStartEvent)))
            if len(frames) > LIMITS["max_nesting"]:
                keep = max((i for i, fr in enumerate(frames[:-1]) if fr.is_map), default=0)
                outer = frames[: keep + 1]
                raise StudyError(source, _frames_path(outer), MISSING,
                                 f"is nested more than {LIMITS['max_nesting']} levels deep (max_nesting in LIMITS, "
                                 "escalade/scenarios/study.py)")


_TOP = {
    "study": "study settings (title, target, cohort_size, max_n, start_dose, dlt_window_days, response_days, "
             "mtd_definition, mtd_delta)",
    "doses": "list of dose levels",
    "designs": "list of designs to compare",
    "scenarios": "list of true scenarios",
    "simulation": "simulation settings (n_trials, seed, chunk_size, exact)",
    "timing": "calendar time: accrual, dlt_onset, enrolment",
    "optimisation": "randomised dose-optimisation stage after escalation (candidates, n_per_arm, select_by)",
    "dlt_rule": "the protocol's DLT definition over graded adverse events, e.g. {crs: 3, icans: 3, any: 5, other: 4}",
}
_OPT_KEYS = {"candidates", "n_per_arm", "randomisation", "select_by", "max_tox", "u11", "u00"}
_STUDY_KEYS = {"title", "target", "cohort_size", "max_n", "start_dose", "dlt_window_days", "response_days",
               "mtd_definition", "mtd_delta"}
_DOSE_KEYS = {"label", "amount", "unit"}
_DESIGN_KEYS = {"name", "design", "params"}
_SCEN_KEYS = {"name", "p_dlt", "p_response", "association", "description", *CART_SCENARIO_KEYS}
_SIM_KEYS = {"n_trials", "seed", "chunk_size", "exact"}
_TIMING_KEYS = {"accrual", "dlt_onset", "enrolment"}
_ACCRUAL_KEYS = {"process", "rate_per_month", "days"}
_ONSET_KEYS = {"distribution"}
_ENROL_KEYS = {"mode", "stagger_days"}
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _finite(v: int | float) -> bool:
    """Finite as a float (an integer too large for a float is not)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _check_param(ctx: "_Ctx", v: Any, path: str, depth: int = 0) -> None:
    """A design parameter must be plain data a config can check (configs validate the values)."""
    if isinstance(v, bool) or v is None or isinstance(v, (str, float)):
        return
    if isinstance(v, int):
        if path.endswith(".max_n") and v > LIMITS["max_sample_size"]:
            raise ctx.err(path, v, f"must be at most {LIMITS['max_sample_size']} patients (max_sample_size in "
                          "LIMITS, escalade/scenarios/study.py)")
        if abs(v) > LIMITS["max_param_int"]:
            raise ctx.err(path, v, f"must be at most {LIMITS['max_param_int']:,} in magnitude, as every whole-number "
                          "design parameter (patients, dose levels) is (max_param_int in LIMITS, "
                          "escalade/scenarios/study.py)")
        return
    if isinstance(v, (list, dict)) and depth < 3:
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in items:
            sub = f"{path}.{_key_text(k)}" if isinstance(v, dict) else f"{path}[{k}]"
            if isinstance(v, dict) and not isinstance(k, str):
                raise ctx.err(sub, MISSING, "parameter names must be text")
            _check_param(ctx, x, sub, depth + 1)
        return
    raise ctx.err(path, v, "must be a number, text, true/false, null or a list of them")


class _Ctx:
    def __init__(self, file: str | None) -> None:
        self.file = file

    def err(self, path: str, value: Any, allowed: str) -> StudyError:
        return StudyError(self.file, path, value, allowed)

    def mapping(self, obj: Any, path: str, keys: set[str] | Mapping[str, str], required: set[str]) -> dict:
        if not isinstance(obj, dict):
            raise self.err(path or "file", obj, f"must be a mapping with keys {sorted(keys)}")
        for k in obj:
            if not isinstance(k, str) or k not in keys:
                raise self.err(f"{path}.{_key_text(k)}" if path else _key_text(k), MISSING,
                               f"unknown key{did_you_mean(str(k), keys)}; allowed keys: {', '.join(sorted(keys))}")
        for k in sorted(required):
            if k not in obj:
                raise self.err(f"{path}.{k}" if path else k, MISSING, "is required")
        return obj

    def number(self, v: Any, path: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, what: str | None = None) -> float:
        if isinstance(v, str) and _FLOAT_RE.match(v.strip()):
            v = float(v)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v)
        if ok and low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
        if not ok:
            if what is None:
                lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
                hi = "" if high is None else f"{high}" + (")" if high_open else "]")
                what = f"a finite number in {lo}, {hi}" if lo and hi else (
                    f"a finite number {'>' if low_open else '>='} {low}" if lo else "a finite number")
            raise self.err(path, v, f"must be {what}")
        return float(v)

    def integer(self, v: Any, path: str, *, low: int, high: int | None = None, what: str | None = None,
                limit: str | None = None) -> int:
        ok = isinstance(v, int) and not isinstance(v, bool)
        if isinstance(v, float) and v.is_integer() and math.isfinite(v):
            ok, v = True, int(v)
        if ok and (v < low or (high is not None and v > high)):
            ok = False
        if not ok:
            rng = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            why = f"{limit} in LIMITS, escalade/scenarios/study.py" if limit else "counts are whole numbers"
            raise self.err(path, v, f"must be {what or rng} ({why})")
        return int(v)

    def text(self, v: Any, path: str, *, max_len: int = 500) -> str:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not v.strip() or len(v) > max_len:
            raise self.err(path, v, f"must be a non-empty text of at most {max_len} characters")
        return v.strip()

    def probs(self, v: Any, path: str, n: int) -> tuple[float, ...]:
        if not isinstance(v, list):
            raise self.err(path, v, f"must be a list of {n} probabilities, one per dose")
        if len(v) != n:
            raise self.err(path, v, f"must have one value per dose ({n} doses); got {len(v)}")
        return tuple(self.number(x, f"{path}[{i}]", low=0.0, high=1.0, what="a probability in [0, 1]")
                     for i, x in enumerate(v))


def load_study(path: str | Path) -> Study:
    """Read and validate a study file.

    Raises
    ------
    StudyError
        With the file, the field path, the value and the fix.
    """
    p = Path(path)
    name = str(path)
    try:
        with p.open("rb") as fh:  # never more than the limit (a huge file, /dev/zero)
            raw = fh.read(LIMITS["max_file_bytes"] + 1)
    except FileNotFoundError:
        raise StudyError(name, "file", MISSING, "does not exist; give the path of a .yaml study file") from None
    except OSError as exc:
        raise StudyError(name, "file", MISSING, f"cannot be read ({exc.strerror})") from None
    if len(raw) > LIMITS["max_file_bytes"]:
        raise StudyError(name, "file", MISSING,
                         f"is over {LIMITS['max_file_bytes']} bytes; study files are limited to {LIMITS['max_file_bytes']} "
                         "bytes (max_file_bytes in LIMITS, escalade/scenarios/study.py)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise StudyError(name, f"line {line}", MISSING,
                         "is not valid UTF-8 text; save the file as UTF-8") from None
    return parse_study(text, source=name)


def parse_study(text: str, source: str | None = None) -> Study:
    """Validate the YAML text of a study file (see :func:`load_study`)."""
    ctx = _Ctx(source)
    if len(text) > LIMITS["max_file_bytes"]:
        raise StudyError(source, "file", MISSING, f"is {len(text)} characters; study files are limited to "
                         f"{LIMITS['max_file_bytes']} (max_file_bytes in LIMITS, escalade/scenarios/study.py)")
    try:
        _scan(text, source)
        loader = _BaseLoader if _BaseLoader is not yaml.SafeLoader else _NoAliasLoader
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader; _scan refused aliases and tags
    except StudyError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}"
        elif isinstance(getattr(exc, "position", None), int):  # a ReaderError: a character YAML refuses
            where = f"line {text[: exc.position].count(chr(10)) + 1}"  # type: ignore[attr-defined]
        else:
            where = "YAML"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise StudyError(source, where, MISSING, f"is not valid YAML: {_key_text(str(problem))[:200]}") from None
    except RecursionError:  # pragma: no cover - _scan bounds the nesting
        raise StudyError(source, "YAML", MISSING, "is nested too deeply") from None
    except ValueError as exc:  # e.g. Python's limit on digits in int(); _scan refuses long numbers first
        raise StudyError(source, "YAML", MISSING, f"holds a value YAML cannot convert ({exc})") from None
    if data is None:
        raise StudyError(source, "file", MISSING, f"is empty; a study needs the keys {sorted(_TOP)}")
    ctx.mapping(data, "", _TOP, {"study", "doses", "scenarios", "designs"})

    st = ctx.mapping(data["study"], "study", _STUDY_KEYS, {"target"})
    title = ctx.text(st.get("title", "Dose-finding study"), "study.title")
    target = ctx.number(st["target"], "study.target", low=0, high=1, low_open=True, high_open=True,
                        what="a DLT rate strictly between 0 and 1")

    doses_raw = data["doses"]
    if not isinstance(doses_raw, list) or not doses_raw:
        raise ctx.err("doses", doses_raw, "must be a non-empty list of dose levels (label, amount, unit)")
    if len(doses_raw) > LIMITS["max_doses"]:
        raise ctx.err("doses", f"<{len(doses_raw)} doses>", f"at most {LIMITS['max_doses']} dose levels are supported"
                      " (max_doses in LIMITS, escalade/scenarios/study.py)")
    doses: list[DoseLevel] = []
    for i, dr in enumerate(doses_raw):
        path = f"doses[{i}]"
        ctx.mapping(dr, path, _DOSE_KEYS, {"amount"})
        amount = ctx.number(dr["amount"], f"{path}.amount", low=0, low_open=True, what="a positive number")
        label = ctx.text(dr.get("label", f"DL{i + 1}"), f"{path}.label", max_len=60)
        unit = ctx.text(dr["unit"], f"{path}.unit", max_len=60) if "unit" in dr else ""
        doses.append(DoseLevel(label, amount, unit))
    amounts = [d.amount for d in doses]
    if any(b <= a for a, b in zip(amounts, amounts[1:])):
        raise ctx.err("doses", amounts, "amounts must increase strictly from the first dose level to the last")
    labels = [d.label for d in doses]
    if len(set(labels)) != len(labels):
        raise ctx.err("doses", labels, "labels must be unique")
    nd = len(doses)

    cohort_size = ctx.integer(st.get("cohort_size", 3), "study.cohort_size", low=1, high=20)
    max_n = ctx.integer(st.get("max_n", 10 * cohort_size), "study.max_n", low=1, high=LIMITS["max_sample_size"],
                        limit="max_sample_size")
    if max_n < cohort_size:
        raise ctx.err("study.max_n", max_n, f"must be at least study.cohort_size ({cohort_size}): a trial holds "
                      "at least one full cohort; raise max_n or lower cohort_size")
    start_dose = ctx.integer(st.get("start_dose", 1), "study.start_dose", low=1, high=nd,
                             what=f"a dose level number in [1, {nd}] (1 = lowest)") - 1
    window = ctx.number(st.get("dlt_window_days", 28), "study.dlt_window_days", low=0, low_open=True)
    resp = ctx.number(st.get("response_days", 90), "study.response_days", low=0, low_open=True)
    mtd_definition = _choice(ctx, st.get("mtd_definition", "highest_below"), "study.mtd_definition",
                             MTD_DEFINITIONS)
    mtd_delta = ctx.number(st.get("mtd_delta", DEFAULT_MTD_DELTA), "study.mtd_delta", low=0, high=0.5,
                           high_open=True, what="a DLT-rate tolerance in [0, 0.5) (default 0.05)")

    designs_raw = data["designs"]
    if not isinstance(designs_raw, list) or not designs_raw:
        raise ctx.err("designs", designs_raw, "must be a non-empty list of designs (name, design, params)")
    if len(designs_raw) > LIMITS["max_designs"]:
        raise ctx.err("designs", f"<{len(designs_raw)} designs>", f"at most {LIMITS['max_designs']} designs"
                      " (max_designs in LIMITS, escalade/scenarios/study.py)")
    designs: list[DesignSpec] = []
    for i, dr in enumerate(designs_raw):
        path = f"designs[{i}]"
        ctx.mapping(dr, path, _DESIGN_KEYS, {"design"})
        kind = ctx.text(dr["design"], f"{path}.design", max_len=40)
        dname = ctx.text(dr.get("name", kind), f"{path}.name", max_len=80)
        params = dr.get("params", {}) or {}
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise ctx.err(f"{path}.params", params, "must be a mapping of parameter names to values")
        for key, value in params.items():
            _check_param(ctx, value, f"{path}.params.{_key_text(key)}")
        designs.append(DesignSpec(dname, kind, dict(params)))
    names = [d.name for d in designs]
    if len(set(names)) != len(names):
        raise ctx.err("designs", names, "design names must be unique; give each a distinct 'name'")

    scen_raw = data["scenarios"]
    if not isinstance(scen_raw, list) or not scen_raw:
        raise ctx.err("scenarios", scen_raw, "must be a non-empty list of scenarios (name, p_dlt, p_response)")
    if len(scen_raw) > LIMITS["max_scenarios"]:
        raise ctx.err("scenarios", f"<{len(scen_raw)} scenarios>", f"at most {LIMITS['max_scenarios']} scenarios"
                      " (max_scenarios in LIMITS, escalade/scenarios/study.py)")
    scenarios: list[Scenario] = []
    dlt_rule = parse_dlt_rule(ctx, data.get("dlt_rule"))
    for i, sr in enumerate(scen_raw):
        path = f"scenarios[{i}]"
        graded = isinstance(sr, dict) and ("adverse_events" in sr)
        ctx.mapping(sr, path, _SCEN_KEYS, {"name"} if graded else {"name", "p_dlt"})
        sname = ctx.text(sr["name"], f"{path}.name", max_len=120)
        given_dlt = ctx.probs(sr["p_dlt"], f"{path}.p_dlt", nd) if "p_dlt" in sr else None
        given_resp = ctx.probs(sr["p_response"], f"{path}.p_response", nd) if "p_response" in sr else None
        cart = parse_cart_scenario(ctx, sr, path, n_doses=nd, rule=dlt_rule, p_dlt=given_dlt,
                                   p_response=given_resp, response_days=resp)
        if cart is not None:
            p_dlt, p_resp = cart.p_dlt, cart.p_response
        else:
            assert given_dlt is not None
            p_dlt, p_resp = given_dlt, given_resp if given_resp is not None else (0.0,) * nd
        assoc = ctx.number(sr.get("association", 0.0), f"{path}.association", low=-1, high=1,
                           low_open=True, high_open=True, what="a correlation strictly between -1 and 1")
        desc = ctx.text(sr["description"], f"{path}.description", max_len=2000) if "description" in sr else ""
        if any(b < a for a, b in zip(p_dlt, p_dlt[1:])):
            msg = f"{source or 'study'}: {path}.p_dlt = {list(p_dlt)} decreases with dose (allowed, but check it)"
            log.warning(msg)
            warnings.warn(msg, NonMonotoneWarning, stacklevel=2)
        if not any(p_dlt):
            msg = (f"{source or 'study'}: {path}.p_dlt is 0 at every dose: no dose is toxic, so the true MTD "
                   f"is simply the highest dose and this scenario only tests how fast a design escalates "
                   f"(allowed, but check it)")
            log.warning(msg)
            warnings.warn(msg, ZeroCurveWarning, stacklevel=2)
        if given_resp is not None and not any(p_resp):
            msg = (f"{source or 'study'}: {path}.p_response is 0 at every dose: no patient ever responds "
                   f"(allowed, but check it; leave p_response out if efficacy is not simulated)")
            log.warning(msg)
            warnings.warn(msg, ZeroCurveWarning, stacklevel=2)
        if cart is not None and (cart.response is not None or cart.ae_types) and "association" in sr:
            raise ctx.err(f"{path}.association", sr["association"], "is not used with adverse_events or response "
                          "sections: set the dependence in adverse_events.correlation (pairs such as crs~response)")
        scenarios.append(Scenario(sname, p_dlt, p_resp, assoc, desc, cart))
    snames = [s.name for s in scenarios]
    if len(set(snames)) != len(snames):
        raise ctx.err("scenarios", snames, "scenario names must be unique")

    sim = data.get("simulation", {}) or {}
    ctx.mapping(sim, "simulation", _SIM_KEYS, set())
    n_trials = ctx.integer(sim.get("n_trials", 1000), "simulation.n_trials", low=1, high=LIMITS["max_trials"],
                          limit="max_trials")
    seed = ctx.integer(sim.get("seed", 2026), "simulation.seed", low=0, high=2**63 - 1)
    chunk = ctx.integer(sim.get("chunk_size", 500), "simulation.chunk_size", low=1, high=100_000)
    exact = sim.get("exact", False)
    if not isinstance(exact, bool):
        raise ctx.err("simulation.exact", exact, "must be true or false")
    total = n_trials * len(scenarios) * len(designs)
    if total > LIMITS["max_total_trials"]:
        raise ctx.err("simulation.n_trials", n_trials,
                      f"gives {total:,} simulated trials ({len(scenarios)} scenarios x {len(designs)} designs); at "
                      f"most {LIMITS['max_total_trials']:,} per study (max_total_trials in LIMITS, "
                      "escalade/scenarios/study.py)")
    if chunk * max_n > LIMITS["max_unit_patients"]:
        raise ctx.err("simulation.chunk_size", chunk,
                      f"x study.max_n ({max_n}) must be at most {LIMITS['max_unit_patients']:,} virtual patients "
                      "per work unit (max_unit_patients in LIMITS, escalade/scenarios/study.py); lower chunk_size")

    timing = _timing(ctx, data.get("timing"))
    if dlt_rule is not None:
        known = {t.name for s in scenarios if s.cart is not None for t in s.cart.ae_types}
        for name, _g in dlt_rule.thresholds:
            if name not in known:
                raise ctx.err(f"dlt_rule.{name}", dict(dlt_rule.thresholds)[name], "names an AE type that no "
                              f"scenario's adverse_events has{did_you_mean(name, known)}; known types: "
                              f"{', '.join(sorted(known)) or 'none'}")
    optimisation = _optimisation(ctx, data["optimisation"], len(doses), target) if "optimisation" in data else None

    return Study(
        timing=timing, optimisation=optimisation,
        title=title, target=target, cohort_size=cohort_size, max_n=max_n, start_dose=start_dose,
        dlt_window_days=window, response_days=resp, doses=tuple(doses), designs=tuple(designs),
        scenarios=tuple(scenarios), simulation=SimulationSettings(n_trials, seed, chunk, exact),
        source=source, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), text=text,
        mtd_delta=mtd_delta, mtd_definition=mtd_definition,  # type: ignore[arg-type]
    )


def _choice(ctx: _Ctx, v: Any, path: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise ctx.err(path, v, f"must be one of {', '.join(allowed)}{did_you_mean(str(v), allowed)}")
    return v


def _optimisation(ctx: _Ctx, raw: Any, n_doses: int, target: float) -> Optimisation:
    """The optional ``optimisation`` section (see :class:`~escalade.scenarios.study.Optimisation`)."""
    ctx.mapping(raw, "optimisation", _OPT_KEYS, {"n_per_arm"})
    cand_raw = raw.get("candidates", "mtd_and_next_lower")
    if isinstance(cand_raw, list):
        if not cand_raw or len(cand_raw) > n_doses:
            raise ctx.err("optimisation.candidates", cand_raw, f"a list of 1 to {n_doses} dose numbers (1 = lowest)")
        doses = [ctx.integer(v, f"optimisation.candidates[{i}]", low=1, high=n_doses) for i, v in enumerate(cand_raw)]
        if len(set(doses)) != len(doses):
            raise ctx.err("optimisation.candidates", cand_raw, "dose numbers must not repeat")
        candidates: str | tuple[int, ...] = tuple(sorted(d - 1 for d in doses))
    else:
        candidates = _choice(ctx, cand_raw, "optimisation.candidates", CANDIDATE_RULES + ("[list of dose numbers]",))
    n_per_arm = ctx.integer(raw.get("n_per_arm"), "optimisation.n_per_arm", low=1, high=1000)
    rand = _choice(ctx, raw.get("randomisation", "equal"), "optimisation.randomisation", ("equal",))
    select_by = _choice(ctx, raw.get("select_by", "orr_with_safety"), "optimisation.select_by", SELECT_RULES)
    if "max_tox" in raw:
        max_tox: float | None = ctx.number(raw["max_tox"], "optimisation.max_tox", low=0, high=1)
    else:
        max_tox = target if select_by == "orr_with_safety" else None
    u11 = ctx.number(raw.get("u11", 60), "optimisation.u11", low=0, high=100)
    u00 = ctx.number(raw.get("u00", 40), "optimisation.u00", low=0, high=100)
    if select_by != "utility" and ("u11" in raw or "u00" in raw):
        raise ctx.err("optimisation.u11", raw.get("u11", raw.get("u00")), "is used only with select_by: utility")
    return Optimisation(candidates=candidates, n_per_arm=n_per_arm, randomisation=rand, select_by=select_by,
                        max_tox=max_tox, u11=u11, u00=u00)


def _timing(ctx: _Ctx, raw: Any) -> Timing:
    """The optional ``timing`` section (see :class:`~escalade.scenarios.study.Timing`)."""
    if raw is None:
        return Timing()
    ctx.mapping(raw, "timing", _TIMING_KEYS, set())
    acc = raw.get("accrual", {}) or {}
    ctx.mapping(acc, "timing.accrual", _ACCRUAL_KEYS, set())
    process = _choice(ctx, acc.get("process", "poisson"), "timing.accrual.process",
                      ("poisson", "uniform", "fixed", "list"))
    rate = ctx.number(acc.get("rate_per_month", 1.5), "timing.accrual.rate_per_month", low=0, high=1000,
                      low_open=True, what="a positive number of patients per month (at most 1000)")
    days: tuple[float, ...] = ()
    if process == "list":
        if "days" not in acc or not isinstance(acc["days"], list) or not acc["days"]:
            raise ctx.err("timing.accrual.days", acc.get("days", MISSING),
                          "must list the arrival days (numbers >= 0, non-decreasing) when process is 'list'")
        days = tuple(ctx.number(x, f"timing.accrual.days[{i}]", low=0) for i, x in enumerate(acc["days"]))
        if any(b < a for a, b in zip(days, days[1:])):
            raise ctx.err("timing.accrual.days", list(days), "arrival days must not decrease")
    elif "days" in acc:
        raise ctx.err("timing.accrual.days", acc["days"], "is only used with process: list")
    onset = raw.get("dlt_onset", {}) or {}
    ctx.mapping(onset, "timing.dlt_onset", _ONSET_KEYS, set())
    dist = _choice(ctx, onset.get("distribution", "uniform"), "timing.dlt_onset.distribution",
                   ("uniform", "early", "late"))
    enr = raw.get("enrolment", {}) or {}
    ctx.mapping(enr, "timing.enrolment", _ENROL_KEYS, set())
    mode = _choice(ctx, enr.get("mode", "cohort"), "timing.enrolment.mode", ("cohort", "stagger"))
    stagger = ctx.number(enr.get("stagger_days", 0), "timing.enrolment.stagger_days", low=0, high=365)
    if mode == "stagger" and stagger <= 0:
        raise ctx.err("timing.enrolment.stagger_days", stagger, "must be > 0 days with mode: stagger")
    return Timing(process, rate, days, dist, mode, stagger, True)
