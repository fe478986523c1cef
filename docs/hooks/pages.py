"""MkDocs hook: the site's pages that are made from other files of the repository, at build time.

* ``getting-started.md``, ``worked-example.md``: sections of ``README.md`` (by heading);
* ``schema.md``: ``scenarios/README.md``, its generated design section replaced by a link to the catalogue;
* ``designs.md``: ``escalade designs --markdown`` (the registry describes every design);
* ``quickstart.md``: ``examples/quickstart.ipynb`` (its cells; the tests run the notebook itself).

Links into the repository are rewritten for the site: to the page that holds the file's text where there
is one (``scenarios/README.md`` -> ``schema.md``), else to the plain text of the link (a file such as
``scenarios/cart_rr_heme.yaml`` is in the repository, not on the site). A heading this hook needs that is
missing from README.md fails the build, naming it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]

#: Pages made from README.md: file name -> (title, the README headings whose sections it holds, in order).
README_PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "getting-started.md": ("Getting started", ("Set-up", "Writing a scenario file", "Validating an installation")),
    "worked-example.md": ("Worked example", ("Worked example", "Reports and amendments",
                                             "Exact operating characteristics, dose paths and conduct")),
}

#: Repository files shown on the site as a page (link targets rewritten to it).
SITE_PAGES: dict[str, str] = {
    "README.md": "index.md",
    "scenarios/README.md": "schema.md",
    "docs/rules.md": "rules.md",
    "docs/architecture.md": "architecture.md",
    "examples/quickstart.ipynb": "quickstart.md",
}

_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _sections(text: str, headings: tuple[str, ...], source: str) -> str:
    """The ``## heading`` sections of ``text`` (each up to the next ``## ``), in the order given."""
    parts = re.split(r"(?m)^## ", text)
    found = {p.split("\n", 1)[0].strip(): "## " + p for p in parts[1:]}
    missing = [h for h in headings if h not in found]
    if missing:
        raise SystemExit(f"docs/hooks/pages.py: {source} has no section '## {missing[0]}'; update README_PAGES "
                         f"in docs/hooks/pages.py to its headings")
    return "\n".join(found[h].rstrip() + "\n" for h in headings)


def _relink(text: str, base: str) -> str:
    """Rewrite relative links of a file at ``base`` (its folder in the repository) for the site."""

    def fix(m: re.Match) -> str:
        bang, label, target = m.groups()
        if re.match(r"^[a-z]+:|^#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo = (ROOT / base / path).resolve()
        try:
            rel = repo.relative_to(ROOT).as_posix()
        except ValueError:
            return label
        if rel in SITE_PAGES:
            return f"{bang}[{label}]({SITE_PAGES[rel]}{'#' + anchor if anchor else ''})"
        if rel.startswith("docs/") and (ROOT / rel).exists():  # a figure or page of the site itself
            return f"{bang}[{label}]({rel[len('docs/'):]}{'#' + anchor if anchor else ''})"
        return label if not label.startswith("`") else f"{label} (in the repository)"

    return _LINK.sub(fix, text)


def _readme_page(name: str) -> str:
    title, headings = README_PAGES[name]
    body = _sections((ROOT / "README.md").read_text(encoding="utf-8"), headings, "README.md")
    body = re.sub(r"(?m)^## ", "## ", body)
    return f"# {title}\n\n*Generated from the repository's README.md.*\n\n" + _relink(body, "")


def _schema_page() -> str:
    from escalade.cli_designs import README_BEGIN, README_END

    text = (ROOT / "scenarios" / "README.md").read_text(encoding="utf-8")
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        text = head + "The parameters of every design are in the [design catalogue](designs.md).\n" + \
            rest.split(README_END, 1)[1]
    return _relink(text, "scenarios")


def _designs_page() -> str:
    from escalade.cli_designs import designs_markdown

    return ("# Design catalogue\n\n*Generated from the design registry (`escalade designs --markdown`); "
            "`escalade designs KIND` prints the same.* In Python each design is a class of "
            "[`escalade.designs`](python-api.md#designs), e.g. `esc.designs.BOIN(target=0.3)`.\n\n"
            + re.sub(r"(?m)^### ", "## ", designs_markdown()))


def _notebook_page() -> str:
    nb = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text(encoding="utf-8"))
    out = []
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        out.append(src if cell["cell_type"] == "markdown" else f"```python\n{src}\n```")
    note = ("*Generated from `examples/quickstart.ipynb` (run it with Jupyter from the repository root; the "
            "tests execute it).*")
    first, _, rest = "\n\n".join(out).partition("\n")
    return f"{first}\n\n{note}\n{rest}\n"


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages to the site."""
    if str(ROOT) not in sys.path:  # the checkout's escalade, as the tests import it
        sys.path.insert(0, str(ROOT))
    pages = {name: _readme_page(name) for name in README_PAGES}
    pages["schema.md"] = _schema_page()
    pages["designs.md"] = _designs_page()
    pages["quickstart.md"] = _notebook_page()
    for name, content in pages.items():
        files.append(File.generated(config, name, content=content))
    return files
