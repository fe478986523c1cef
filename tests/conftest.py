"""Shared fixtures: where the reference outputs of the R packages live.

The reference outputs (R BOIN, dfcrm, escalation, Stan EffTox) are part of the repository, in
``validation/reference/`` (provenance in ``validation/reference/README.md``), so the suite needs nothing beside
a clone; nothing outside the repository is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "validation" / "reference"
EXAMPLE = REPO / "scenarios" / "cart_rr_heme.yaml"


def load_reference(*parts: str) -> dict:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference file {path} is missing; restore it with `git checkout -- validation/reference`")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def example_study_path() -> Path:
    return EXAMPLE
