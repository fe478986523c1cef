"""Validation helpers shared by the frozen design configurations.

Each raises :class:`~escalade.design.errors.ConfigError` naming the field,
the value and what is allowed; the study loader adds the file and the field's
path (``designs[2].params.target``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from escalade.design.errors import ConfigError

__all__ = ["check_boin_interval", "check_fraction", "check_probability", "check_int", "check_positive", "check_probabilities",
           "check_increasing"]


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_fraction(name: str, value: Any) -> None:
    """A number strictly inside (0, 1)."""
    if not _is_real(value) or not math.isfinite(value) or not 0.0 < value < 1.0:
        raise ConfigError(name, value, "must be a number strictly between 0 and 1")


def check_probability(name: str, value: Any) -> None:
    """A number in [0, 1]."""
    if not _is_real(value) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(name, value, "must be a probability in [0, 1]")


def check_positive(name: str, value: Any) -> None:
    """A finite number > 0."""
    if not _is_real(value) or not math.isfinite(value) or not value > 0:
        raise ConfigError(name, value, "must be a finite number > 0")


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None,
              what: str | None = None) -> None:
    """An integer (not a bool, not a float) within [low, high]."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok and low is not None and value < low:
        ok = False
    if ok and high is not None and value > high:
        ok = False
    if not ok:
        if what is None:
            rng = f" >= {low}" if high is None and low is not None else (
                f" in [{low}, {high}]" if low is not None else "")
            what = f"an integer{rng}"
        raise ConfigError(name, value, f"must be {what}")


def check_start_dose(start_dose: Any, n_doses: int) -> None:
    """A 0-based dose index in ``[0, n_doses - 1]``."""
    check_int("start_dose", start_dose, low=0, high=n_doses - 1,
              what=f"a 0-based dose index in [0, {n_doses - 1}]")


def check_trial_size(n_doses: Any, cohort_size: Any, max_n: Any, start_dose: Any) -> None:
    """The fields every cohort design has: doses, cohort size, maximum sample size (at least one cohort), start dose."""
    check_int("n_doses", n_doses, low=1)
    check_int("cohort_size", cohort_size, low=1)
    check_int("max_n", max_n, low=1)
    if max_n < cohort_size:
        raise ConfigError("max_n", max_n, f"must be at least the cohort size ({cohort_size}): a trial holds at "
                                          "least one full cohort; raise max_n or lower cohort_size")
    check_start_dose(start_dose, n_doses)


def check_probabilities(name: str, values: Sequence[Any], length: int | None = None,
                        *, open_interval: bool = False) -> None:
    """A list of probabilities (optionally of a given length)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ConfigError(name, values, "must be a list of probabilities")
    if length is not None and len(values) != length:
        raise ConfigError(name, values, f"must have one value per dose ({length}); got {len(values)}")
    for i, v in enumerate(values):
        if open_interval:
            check_fraction(f"{name}[{i}]", v)
        else:
            check_probability(f"{name}[{i}]", v)


def check_increasing(name: str, values: Sequence[float]) -> None:
    """Strictly increasing values."""
    if any(not b > a for a, b in zip(values, values[1:])):
        raise ConfigError(name, list(values), "must increase strictly")


def check_boin_interval(cfg: Any) -> None:
    """Fill and check a BOIN-family config's ``p_saf``/``p_tox`` (Liu & Yuan 2015's defaults 0.6 and 1.4 x
    ``target``): both fractions, ``p_saf < target < p_tox``; errors name the field and the default."""
    from escalade.design.errors import ConfigError

    if cfg.p_saf is None:
        object.__setattr__(cfg, "p_saf", 0.6 * cfg.target)
    if cfg.p_tox is None:
        object.__setattr__(cfg, "p_tox", 1.4 * cfg.target)
    check_fraction("p_saf", cfg.p_saf)
    check_fraction("p_tox", cfg.p_tox)
    if not cfg.p_saf < cfg.target:
        raise ConfigError("p_saf", cfg.p_saf, f"must be below the target {cfg.target} (default 0.6 * target)")
    if not cfg.p_tox > cfg.target:
        raise ConfigError("p_tox", cfg.p_tox, f"must be above the target {cfg.target} (default 1.4 * target)")
