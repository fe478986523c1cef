"""The jinja2 environment of the reports: autoescaping everywhere, strict undefined.

Every user-supplied string (study title, scenario, design and dose names,
units) reaches the HTML through ``{{ ... }}`` and is escaped, in text and in
attributes alike; the templates never use ``|safe``. Figures are embedded as
``data:`` URIs built from PNG bytes, so no user text is ever inlined as markup.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["environment", "render", "TEMPLATE_DIR"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """The shared environment (templates from ``reports/templates``)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,  # every template, whatever its file name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a file in ``reports/templates``) with ``context``."""
    return environment().get_template(template).render(**context)
