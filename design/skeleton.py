"""CRM skeletons calibrated by indifference intervals (``dfcrm::getprior``).

Lee & Cheung (2009), Clin Trials 6:227-238; Cheung (2011), *Dose Finding by the
Continual Reassessment Method*, chapter 8.

With target :math:`\\phi`, half-width :math:`\\delta` of the indifference
interval and prior MTD level :math:`\\nu`, the skeleton is built so that, for
every dose :math:`k`, the value of the model parameter at which dose
:math:`k` reaches :math:`\\phi + \\delta` is the one at which dose
:math:`k + 1` reaches :math:`\\phi - \\delta`. Starting from
:math:`s_\\nu = \\phi`:

* **empiric** model :math:`p_k(\\beta) = s_k^{\\exp\\beta}`:

  .. math::

      s_{k-1} = \\exp\\Big(\\log s_k \\,\\frac{\\log(\\phi-\\delta)}{\\log(\\phi+\\delta)}\\Big),\\qquad
      s_{k+1} = \\exp\\Big(\\log s_k \\,\\frac{\\log(\\phi+\\delta)}{\\log(\\phi-\\delta)}\\Big);

* **logistic** model :math:`\\mathrm{logit}\\,p_k(\\beta) = a_0 + e^\\beta x_k` with
  :math:`x_k = \\mathrm{logit}(s_k) - a_0`, :math:`x_\\nu = \\mathrm{logit}(\\phi) - a_0`:

  .. math::

      x_{k-1} = x_k \\frac{\\mathrm{logit}(\\phi-\\delta) - a_0}{\\mathrm{logit}(\\phi+\\delta) - a_0},\\qquad
      x_{k+1} = x_k \\frac{\\mathrm{logit}(\\phi+\\delta) - a_0}{\\mathrm{logit}(\\phi-\\delta) - a_0},

  and :math:`s_k = 1/(1 + e^{-a_0 - x_k})`.

Examples
--------
>>> [round(s, 4) for s in getprior(0.05, 0.25, 3, 5)]
[0.084, 0.1567, 0.25, 0.3545, 0.4603]
"""

from __future__ import annotations

import math
from typing import Literal

from escalade.design.config import check_fraction, check_int
from escalade.design.errors import ConfigError

__all__ = ["getprior"]


def _logit(q: float) -> float:
    return math.log(q / (1.0 - q))


def getprior(
    halfwidth: float,
    target: float,
    nu: int,
    nlevel: int,
    model: Literal["empiric", "logistic"] = "empiric",
    intercept: float = 3.0,
) -> tuple[float, ...]:
    """Skeleton of ``nlevel`` doses with prior MTD at level ``nu`` (1-based, as dfcrm).

    Parameters
    ----------
    halfwidth
        Half-width :math:`\\delta` of the indifference interval,
        :math:`0 < \\delta < \\min(\\phi, 1 - \\phi)`.
    target
        Target DLT probability :math:`\\phi`.
    nu
        Prior guess of the MTD, a 1-based level in ``1 .. nlevel`` (as ``dfcrm``).
    nlevel
        Number of dose levels.
    model
        ``"empiric"`` (power) or ``"logistic"`` (one-parameter, intercept ``intercept``).
    intercept
        :math:`a_0` of the logistic model (``intcpt`` in dfcrm); ignored for empiric.

    Returns
    -------
    tuple of float
        The skeleton :math:`s_1 < \\dots < s_K`, equal to
        ``dfcrm::getprior(halfwidth, target, nu, nlevel, model, intcpt)``.

    Raises
    ------
    ConfigError
        For a half-width that leaves :math:`(0, 1)`, a level out of range, or a
        logistic intercept at or below :math:`\\mathrm{logit}(\\phi + \\delta)`.
    """
    check_fraction("target", target)
    check_int("nlevel", nlevel, low=1)
    check_int("nu", nu, low=1, high=nlevel, what=f"a 1-based dose level in [1, {nlevel}]")
    lo, hi = target - halfwidth, target + halfwidth
    if not (isinstance(halfwidth, (int, float)) and halfwidth > 0 and lo > 0 and hi < 1):
        raise ConfigError("halfwidth", halfwidth,
                          f"must be > 0 and leave target +/- halfwidth inside (0, 1), i.e. below "
                          f"{min(target, 1 - target)} for target {target}")
    sk = [0.0] * nlevel
    k0 = nu - 1
    if model == "empiric":
        sk[k0] = target
        up = math.log(hi) / math.log(lo)      # > 0 and < 1
        down = math.log(lo) / math.log(hi)    # > 1
        for k in range(k0, 0, -1):
            sk[k - 1] = math.exp(math.log(sk[k]) * down)
        for k in range(k0, nlevel - 1):
            sk[k + 1] = math.exp(math.log(sk[k]) * up)
        return tuple(sk)
    if model == "logistic":
        a0 = float(intercept)
        if not _logit(hi) - a0 < 0:
            raise ConfigError("intercept", intercept,
                              f"must exceed logit(target + halfwidth) = {_logit(hi):.4g} for the logistic model")
        xs = [0.0] * nlevel
        xs[k0] = _logit(target) - a0
        up = (_logit(hi) - a0) / (_logit(lo) - a0)
        down = (_logit(lo) - a0) / (_logit(hi) - a0)
        for k in range(k0, 0, -1):
            xs[k - 1] = xs[k] * down
        for k in range(k0, nlevel - 1):
            xs[k + 1] = xs[k] * up
        return tuple(1.0 / (1.0 + math.exp(-a0 - x)) for x in xs)
    raise ConfigError("model", model, "must be one of ['empiric', 'logistic']")
