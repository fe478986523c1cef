"""examples/quickstart.ipynb runs from top to bottom (nbclient, the venv's ``python3`` kernel) and shows
its tables and figures.

The kernel imports this checkout (``PYTHONPATH``), so the notebook tests the code beside it. Without
nbclient/ipykernel (the ``test`` extra) the test is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing: install the test extra (pip install '.[test]')")
        pytest.skip(f"{module} is not installed (pip install '.[test]')")


def test_quickstart_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = _need("nbformat")
    nbclient = _need("nbclient")
    _need("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "commit the notebook without outputs (the test runs it)"
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    elapsed = time.perf_counter() - t0
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 2, "run.plot.selection() and run.plot.allocation() show as figures"
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert any("correct_selection_pct" in o["data"]["text/plain"] or "se_unpaired" in o["data"]["text/plain"]
               for o in tables)
    # the notebook is an example to read in seconds; 120 s leaves room for a busy 2-core CI machine
    assert elapsed < 120, f"the notebook took {elapsed:.0f} s; keep it quick (about 20 s)"
