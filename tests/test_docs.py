"""The documentation site builds without a warning (``mkdocs build --strict``), and says what the code does.

The generated pages (docs/hooks/pages.py) come from README.md, scenarios/README.md, the design registry and
the example notebook; the Python API page from the docstrings (mkdocstrings). Without mkdocs (the ``docs``
extra) the test is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _text(page: Path) -> str:
    """A built page's text (tags removed: code is split into highlighted tokens)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_docs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        try:
            __import__(module)
        except ImportError:
            if os.environ.get("CI"):
                pytest.fail(f"{module} is missing: install the docs extra (pip install '.[docs]')")
            pytest.skip(f"{module} is not installed (pip install '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    pages = {p: _text(site / p / "index.html") for p in (
        "getting-started", "worked-example", "quickstart", "schema", "designs", "rules", "architecture", "python-api")}
    from escalade.design import registry

    for e in registry.entries():  # the catalogue is the registry
        assert e.kind in pages["designs"] and e.name.split(" (")[0] in pages["designs"]
    assert "escalade run scenarios/cart_rr_heme.yaml" in pages["getting-started"]
    assert "python -m pytest -q" in pages["getting-started"]
    assert "cart-v2" in pages["worked-example"]
    assert "p_dlt" in pages["schema"] and "BEGIN escalade designs" not in pages["schema"]
    assert "run.compare" in pages["quickstart"]
    for name in ("Study", "from_yaml", "to_yaml", "Run", "compare", "decision_table", "next_dose", "paths"):
        assert name in pages["python-api"], name
