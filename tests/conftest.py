"""Shared fixtures: where the reference outputs of the R packages live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("ESCALADE_REFERENCE", REPO.parent / "shared" / "reference"))
EXAMPLE = REPO / "scenarios" / "cart_rr_heme.yaml"


def load_reference(*parts: str) -> dict:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference file {path} is missing; set ESCALADE_REFERENCE to the shared/reference folder")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def example_study_path() -> Path:
    return EXAMPLE
