"""``escalade designs`` (the registry describes itself) and ``escalade skeleton`` (priors from the CLI).

``escalade designs`` lists every registered design with its parameters,
defaults, meaning and citation; ``escalade designs KIND`` shows one;
``--json`` prints ``[{"kind", "name", "params": {name: default}, "citation"}]``
and ``--markdown`` the section of scenarios/README.md that is generated from
the same source (a test fails when the two drift).

``escalade skeleton`` calibrates a CRM skeleton by indifference intervals
(``dfcrm::getprior``; Lee & Cheung 2009) or, with ``--efftox``, derives the
EffTox normal prior from elicited probabilities and effective sample sizes
(Thall et al. 2014), printing YAML to paste into a study file's ``params``.
Registered by :func:`add_parser` (the CLI collects ``cli_*`` modules).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from typing import Any

from escalade.design import registry
from escalade.design.base import DesignEntry

__all__ = ["add_parser", "designs_json", "designs_text", "designs_markdown", "update_readme", "README_BEGIN",
           "README_END"]

#: Markers around the generated part of scenarios/README.md.
README_BEGIN = "<!-- BEGIN escalade designs --markdown (generated; edit the design modules, not this) -->"
README_END = "<!-- END escalade designs --markdown -->"


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("designs", help="list the designs with their parameters, defaults and citations")
    d.add_argument("kind", nargs="?", help="show one design (its kind or an alias)")
    fmt = d.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable list")
    fmt.add_argument("--markdown", action="store_true", help="the generated section of scenarios/README.md")
    d.add_argument("--update", metavar="README", help="with --markdown: rewrite that section of README in place")
    d.set_defaults(func=_cmd_designs)

    s = sub.add_parser("skeleton", help="CRM skeleton by indifference intervals (dfcrm getprior), or the "
                                         "EffTox prior (--efftox)")
    s.add_argument("--target", type=float, help="CRM: target DLT probability")
    s.add_argument("--n-doses", type=int, help="CRM: number of dose levels")
    s.add_argument("--mtd", type=int, help="CRM: prior guess of the MTD, 1-based level (dfcrm nu)")
    s.add_argument("--halfwidth", type=float, help="CRM: half-width of the indifference interval (dfcrm halfwidth)")
    s.add_argument("--model", choices=["empiric", "logistic"], default="empiric")
    s.add_argument("--intercept", type=float, default=3.0, help="logistic model intercept (dfcrm intcpt)")
    s.add_argument("--efftox", action="store_true", help="derive the EffTox prior instead")
    s.add_argument("--doses", type=float, nargs="+", help="EffTox: dose amounts")
    s.add_argument("--prob-eff", type=float, nargs="+", help="EffTox: elicited prior response probability per dose")
    s.add_argument("--prob-tox", type=float, nargs="+", help="EffTox: elicited prior DLT probability per dose")
    s.add_argument("--ess-eff", type=float, default=0.9, help="EffTox: target prior ESS of efficacy")
    s.add_argument("--ess-tox", type=float, default=0.9, help="EffTox: target prior ESS of toxicity")
    s.set_defaults(func=_cmd_skeleton)


# -------------------------------------------------------------------------------------------------
# escalade designs
# -------------------------------------------------------------------------------------------------


def _plain(v: Any) -> Any:
    """JSON-friendly default (tuples as lists, other objects as text)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def designs_json(kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``[{"kind", "name", "params": {name: default}, "citation"}]`` (required parameters: None)."""
    out = []
    for e in _entries(kinds):
        out.append({"kind": e.kind, "name": e.name,
                    "params": {p.name: _plain(p.default) for p in registry.param_info(e.kind)},
                    "citation": e.citation})
    return out


_ROLE = re.compile(r":(?:math|class|func|data|meth|mod|attr):`~?([^`]*)`")


def _role_text(m: re.Match) -> str:
    """A role's text: the last part of a dotted name (``~a.b.C`` -> ``C``), maths as written."""
    body = m.group(1)
    return body.rsplit(".", 1)[-1] if (" " not in body and "\\" not in body) else body


def _md(text: str) -> str:
    """numpydoc/reST inline markup as Markdown: roles and double back-quotes become code spans."""
    text = _ROLE.sub(lambda m: "`" + _role_text(m) + "`", text)
    return text.replace("``", "`").replace("|", "\\|")


def _plain_text(text: str) -> str:
    """numpydoc/reST inline markup as plain text."""
    return _ROLE.sub(_role_text, text).replace("``", "")


def _entries(kinds: Sequence[str] | None) -> list[DesignEntry]:
    return registry.entries() if not kinds else [registry.entry(k) for k in kinds]


def _default_text(p: registry.ParamInfo) -> str:
    if p.required:
        return "study setting" if p.name in registry.STUDY_SETTINGS else "required"
    if p.default is None:
        return "none"
    return json.dumps(_plain(p.default))


def _traits(e: DesignEntry) -> str:
    bits = []
    if getattr(e.design, "uses_efficacy", False):
        bits.append("decides on response and DLT (phase I/II)")
    else:
        bits.append("decides on DLT")
    if getattr(e.design, "enumerable", False):
        bits.append("exact operating characteristics and dose paths available")
    if callable(getattr(e.design, "decide_tite", None)):  # the DecidesOnFollowUp protocol
        bits.append("decides on follow-up times (runs on the calendar; see timing)")
    return "; ".join(bits)


def designs_text(kinds: Sequence[str] | None = None) -> str:
    """Every design (or those of ``kinds``) with parameters, defaults, meaning and citation, as text."""
    blocks = []
    for e in _entries(kinds):
        lines = [f"{e.kind}: {e.name}"]
        if e.aliases:
            lines.append(f"  also: {', '.join(e.aliases)}")
        lines.append(f"  {e.citation}")
        lines.append(f"  {_traits(e)}")
        params = registry.param_info(e.kind)
        w = max(len(p.name) for p in params) + 2
        dw = min(max(len(_default_text(p)) for p in params) + 2, 28)
        for p in params:
            lines.append(f"    {p.name:<{w}}{_default_text(p):<{dw}}{_plain_text(p.meaning)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def designs_markdown() -> str:
    """The design section of scenarios/README.md (between :data:`README_BEGIN` and :data:`README_END`)."""
    out = [README_BEGIN, "",
           "Study-level settings (`target`, `n_doses`, `cohort_size`, `max_n`, `start_dose`, `doses`) fill a "
           "design's parameter of the same name unless its `params` set it. `escalade designs KIND` prints "
           "the same list.", ""]
    for e in registry.entries():
        out.append(f"### `{e.kind}`: {e.name}")
        out.append("")
        out.append(f"{e.citation}  ")
        if e.aliases:
            out.append(f"Also accepted: {', '.join(f'`{a}`' for a in e.aliases)}.  ")
        out.append(_traits(e)[0].upper() + _traits(e)[1:] + ".")
        out.append("")
        out.append("| parameter | default | meaning |")
        out.append("|---|---|---|")
        for p in registry.param_info(e.kind):
            out.append(f"| `{p.name}` | `{_default_text(p)}` | {_md(p.meaning)} |")
        out.append("")
    out.append(_timing_markdown())
    out.append(README_END)
    return "\n".join(out)


def _timing_markdown() -> str:
    import dataclasses

    from escalade.scenarios.study import Timing

    rows = ["### `timing`: calendar time (accrual, DLT onset, enrolment rules)", "",
            "Optional study-level section. Designs that decide on follow-up times run on the calendar "
            "whether or not it is given (with these defaults); with `timing` present, every design does, "
            "and durations are reported.", "",
            "| key | default | meaning |", "|---|---|---|"]
    docs = registry._attribute_docs(Timing.__doc__ or "")
    for f in dataclasses.fields(Timing):
        if not f.init or f.name == "enabled":  # set by the loader, not a key of the section
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append(f"| `{f.name}` | `{json.dumps(_plain(default))}` | {_md(docs.get(f.name, ''))} |")
    rows.append("")
    return "\n".join(rows)


def update_readme(path: str) -> bool:
    """Replace the generated section of ``path`` (between the markers, or a ``<!-- generated -->`` line).

    Returns True when the file changed.

    Raises
    ------
    ConfigError
        When the file has neither the markers nor the placeholder line.
    """
    from pathlib import Path

    from escalade.design.errors import ConfigError

    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if README_BEGIN in text and README_END in text:
        a, b = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    elif "<!-- generated -->" in text:
        a = text.index("<!-- generated -->")
        b = a + len("<!-- generated -->")
    else:
        raise ConfigError(str(path), None, f"needs the lines {README_BEGIN!r} ... {README_END!r} "
                                           f"(or '<!-- generated -->') where the design list goes")
    new = text[:a] + designs_markdown() + text[b:]
    if new == text:
        return False
    p.write_text(new, encoding="utf-8")
    return True


def _cmd_designs(args: argparse.Namespace, argv: Sequence[str]) -> int:
    kinds = [args.kind] if args.kind else None
    if args.json:
        print(json.dumps(designs_json(kinds), indent=2))
    elif args.markdown and args.update:
        changed = update_readme(args.update)
        print(f"{args.update}: {'updated' if changed else 'already up to date'}")
    elif args.markdown:
        print(designs_markdown())
    else:
        print(designs_text(kinds))
    return 0


# -------------------------------------------------------------------------------------------------
# escalade skeleton
# -------------------------------------------------------------------------------------------------


def _cmd_skeleton(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from escalade.design.errors import ConfigError

    if args.efftox:
        from escalade.design.efftox import prior_from_ess

        for name in ("doses", "prob_eff", "prob_tox"):
            if getattr(args, name) is None:
                raise ConfigError(f"--{name.replace('_', '-')}", None, "is required with --efftox, e.g. "
                                  "--doses 1 2 4 --prob-eff 0.2 0.4 0.6 --prob-tox 0.05 0.1 0.2")
        prior = prior_from_ess(args.doses, prob_eff=args.prob_eff, prob_tox=args.prob_tox,
                               ess_eff=args.ess_eff, ess_tox=args.ess_tox)
        print("# EffTox prior (Thall et al. 2014, Stat Med 33:2607-2626): paste under the design's params")
        for k, v in prior.as_dict().items():
            print(f"{k}: {v:.6g}")
        return 0
    from escalade.design.skeleton import getprior

    for name in ("target", "n_doses", "mtd", "halfwidth"):
        if getattr(args, name) is None:
            raise ConfigError(f"--{name.replace('_', '-')}", None, "is required, e.g. escalade skeleton "
                              "--target 0.25 --n-doses 5 --mtd 3 --halfwidth 0.05")
    sk = getprior(args.halfwidth, args.target, args.mtd, args.n_doses, model=args.model, intercept=args.intercept)
    print(f"# CRM skeleton by indifference intervals (Lee & Cheung 2009; dfcrm::getprior("
          f"{args.halfwidth:g}, {args.target:g}, {args.mtd}, {args.n_doses}"
          + (f", model = \"logistic\", intcpt = {args.intercept:g}" if args.model == "logistic" else "") + "))")
    print("skeleton: [" + ", ".join(f"{s:.4f}" for s in sk) + "]")
    if args.model == "logistic":
        print(f"model: logistic\nintercept: {args.intercept:g}")
    return 0
