"""Shared fixtures: where the reference outputs of the R packages live.

The reference outputs (R BOIN, dfcrm, escalation, Stan EffTox) are part of the repository, in
``tests/reference/`` (provenance in ``tests/reference/README.md``), so the suite needs nothing beside
a clone. ``ESCALADE_REFERENCE`` may point at another copy of the same folder layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("ESCALADE_REFERENCE") or REPO / "tests" / "reference")
EXAMPLE = REPO / "scenarios" / "cart_rr_heme.yaml"


def load_reference(*parts: str) -> dict:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        if os.environ.get("ESCALADE_REFERENCE"):
            fix = "ESCALADE_REFERENCE points at a folder without it; unset it to use tests/reference/"
        else:
            fix = "restore it with `git checkout -- tests/reference`"
        pytest.fail(f"reference file {path} is missing; {fix}")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def example_study_path() -> Path:
    return EXAMPLE
