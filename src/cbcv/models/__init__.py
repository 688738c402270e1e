"""cbcv.models: one class per model family, parameter names as in the papers.

=============  ==========================================  ========================  ==================
name           class                                       parameters                data
=============  ==========================================  ========================  ==================
bgnbd          :class:`~cbcv.models.bgnbd.BetaGeoModel`      r, alpha, a, b            x, t_x, T
mbgnbd         :class:`~cbcv.models.bgnbd.ModifiedBetaGeoModel`  r, alpha, a, b      x, t_x, T
pareto_nbd     :class:`~cbcv.models.pareto_nbd.ParetoNBDModel`  r, alpha, s, beta    x, t_x, T
gamma_gamma    :class:`~cbcv.models.gamma_gamma.GammaGammaModel`  p, q, gamma        x, mean_repeat_spend
bgbb           :class:`~cbcv.models.bgbb.BetaGeoBetaBinomModel`  alpha, beta, gamma, delta  x, t_x, n
sbg            :class:`~cbcv.models.sbg.ShiftedBetaGeoModel`  alpha, beta             durations / survivors
bdw            :class:`~cbcv.models.bdw.BetaDiscreteWeibullModel`  gamma, delta, c     durations / survivors
=============  ==========================================  ========================  ==================

May import: audit, config, data and core (likelihoods, fitting and diagnostics; no
prediction engine, CLV or valuation).
"""

from __future__ import annotations

from cbcv.core.errors import CbcvError
from cbcv.models.base import CLVModel, Prior, SamplerSettings, compress
from cbcv.models.bdw import BetaDiscreteWeibullModel
from cbcv.models.bgbb import BetaGeoBetaBinomModel
from cbcv.models.bgnbd import BetaGeoModel, ModifiedBetaGeoModel
from cbcv.models.blas import link_blas
from cbcv.models.gamma_gamma import GammaGammaModel
from cbcv.models.pareto_nbd import ParetoNBDModel
from cbcv.models.priors import LogScalePrior, priors_table
from cbcv.models.sbg import ShiftedBetaGeoModel

link_blas()  # before any PyTensor graph is compiled (see cbcv.models.blas)

MODELS: dict[str, type[CLVModel]] = {
    cls.name: cls
    for cls in (
        BetaGeoModel,
        ModifiedBetaGeoModel,
        ParetoNBDModel,
        GammaGammaModel,
        BetaGeoBetaBinomModel,
        ShiftedBetaGeoModel,
        BetaDiscreteWeibullModel,
    )
}
#: Models fitted on the per-customer summary of a transaction log (``customer_summary``).
SUMMARY_MODELS: tuple[str, ...] = ("bgnbd", "mbgnbd", "pareto_nbd", "gamma_gamma")
#: Purchase-frequency models among them (the others model spend).
FREQUENCY_MODELS: tuple[str, ...] = ("bgnbd", "mbgnbd", "pareto_nbd")


def get_model(name: str) -> type[CLVModel]:
    """The model class registered under ``name``; a clear error for an unknown name."""
    try:
        return MODELS[name]
    except KeyError:
        raise CbcvError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


__all__ = [
    "MODELS",
    "SUMMARY_MODELS",
    "FREQUENCY_MODELS",
    "BetaDiscreteWeibullModel",
    "BetaGeoBetaBinomModel",
    "BetaGeoModel",
    "CLVModel",
    "GammaGammaModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
    "Prior",
    "SamplerSettings",
    "ShiftedBetaGeoModel",
    "compress",
    "get_model",
    "LogScalePrior",
    "priors_table",
]
