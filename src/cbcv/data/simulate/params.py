"""Population parameters of the simulated models, the CDNOW estimates, and the argument checks.

:class:`BGNBDParams` and :class:`ParetoNBDParams` share the purchase-rate prior
``lambda ~ Gamma(r, alpha)`` (:class:`PurchaseRatePrior`); :class:`GammaGammaParams` is the spend
model. Every parameter must be a finite positive number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from cbcv.core.errors import ConfigError


@dataclass(frozen=True)
class PositiveParams:
    """Base of the parameter sets: every field must be a finite positive number."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float | np.floating | np.integer)
                    and math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"{type(self).__name__}.{f.name} must be a finite positive number, "
                    f"got {value!r}"
                )


@dataclass(frozen=True)
class PurchaseRatePrior(PositiveParams):
    """The purchase rate of both frequency models: ``lambda ~ Gamma(r, alpha)`` (rate ``alpha``)."""

    r: float
    alpha: float


@dataclass(frozen=True)
class BGNBDParams(PurchaseRatePrior):
    """BG/NBD population parameters: ``lambda ~ Gamma(r, alpha)`` (rate), ``p ~ Beta(a, b)``.

    ``p`` is a customer's probability of dropping out right after each repeat purchase (Fader,
    Hardie & Lee 2005, Marketing Science, assumptions i-v); the mean of ``p`` is ``a / (a + b)``.
    """

    a: float
    b: float


@dataclass(frozen=True)
class ParetoNBDParams(PurchaseRatePrior):
    """Pareto/NBD population parameters: ``lambda ~ Gamma(r, alpha)``, ``mu ~ Gamma(s, beta)``.

    ``mu`` is the rate of a customer's exponential lifetime (Schmittlein, Morrison & Colombo 1987).
    """

    s: float
    beta: float


@dataclass(frozen=True)
class GammaGammaParams(PositiveParams):
    """Gamma-gamma spend parameters: ``nu ~ Gamma(q, gamma)``, ``z | nu ~ Gamma(p, nu)`` (rates)."""

    p: float
    q: float
    gamma: float

    @property
    def mean_spend(self) -> float:
        """Population mean value of a transaction, ``p gamma / (q - 1)`` (infinite for q <= 1)."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else math.inf


FrequencyParams = BGNBDParams | ParetoNBDParams

#: CDNOW sample, weekly, calibration to 1997-09-30: BG/NBD maximum-likelihood estimates
#: (Fader, Hardie & Lee 2005, Marketing Science, section 4).
CDNOW_BGNBD = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
#: The same data's Pareto/NBD estimates as reported by Fader, Hardie & Lee (2005).
CDNOW_PARETO_NBD = ParetoNBDParams(r=0.55, alpha=10.58, s=0.61, beta=11.67)
#: CDNOW gamma-gamma spend estimates (Fader, Hardie & Lee 2005, JMR; Fader & Hardie 2013 note).
CDNOW_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int when it is a positive integer (not a bool), else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_params(params: Any, spend: Any) -> None:
    """Raise :class:`ConfigError` unless ``params`` is a frequency model and ``spend`` one or None."""
    if not isinstance(params, BGNBDParams | ParetoNBDParams):
        raise ConfigError(
            f"params must be BGNBDParams or ParetoNBDParams, got {type(params).__name__}"
        )
    if spend is not None and not isinstance(spend, GammaGammaParams):
        raise ConfigError(f"spend must be GammaGammaParams or None, got {type(spend).__name__}")
