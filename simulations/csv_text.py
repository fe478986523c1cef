"""Text cells of the CSV files escalade writes, safe to open in a spreadsheet.

A spreadsheet that opens a CSV file runs a cell starting with ``=``, ``+``,
``-`` or ``@`` (and, in some programs, a tab or carriage return) as a formula:
a scenario named ``=HYPERLINK("http://...")`` would become a live link
("CSV injection", OWASP). The Excel export stores such names as text
(``reports/xlsx.py``); a CSV file has no types, so each text cell that starts
with one of these characters, or with an apostrophe, is written with a leading
apostrophe, which spreadsheets read as "this cell is text". Plain numbers
written as text (``-1``, ``+0.5``, ``-2e-3``) are left alone: they are not
formulas, and numeric columns are never touched, so negative numbers stay
numbers. :func:`restore` undoes :func:`neutralise` exactly (every text that
starts with an apostrophe was written with one more), which is how
``escalade report`` reads the names back.

Examples
--------
>>> neutralise("=HYPERLINK(1)"), neutralise("-s1"), neutralise("-1.5"), neutralise("BOIN")
("'=HYPERLINK(1)", "'-s1", '-1.5', 'BOIN')
>>> restore(neutralise("'quoted")) == "'quoted"
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

__all__ = ["neutralise", "restore", "neutralise_frame", "restore_frame", "FORMULA_START"]

#: First characters that make a spreadsheet read a cell as a formula (plus the apostrophe, for a round trip).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would read it as a formula (see the module)."""
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def restore(text: str) -> str:
    """Inverse of :func:`neutralise`: drop the one leading apostrophe it added."""
    return text[1:] if text.startswith("'") else text


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells are :func:`neutralise`\\ d (numeric and boolean columns untouched)."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = out[c].map(lambda v: neutralise(v) if isinstance(v, str) else v)
    return out


def restore_frame(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """``df`` with :func:`restore` applied to the text cells of ``columns`` (in place; returned)."""
    for c in columns:
        if c in df.columns:
            df[c] = df[c].map(lambda v: restore(v) if isinstance(v, str) else v)
    return df
