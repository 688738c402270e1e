"""Customer covariates against a peer's published estimates: CLVTools' Pareto/NBD with static
covariates on its apparel data (``data/raw/clvtools_apparel/``, see ``data/README.md``).

CLVTools scales the purchase rate's scale ``alpha_i = alpha exp(-z gamma_trans)`` and the dropout
rate's ``beta_i = beta exp(-z gamma_life)``, as cbcv's Pareto/NBD link does, so with the 0/1
covariates coded as levels against 0 cbcv's ``purchase[...]`` and ``dropout[...]`` coefficients
are CLVTools' ``trans.*`` and ``life.*``. Its maximum-likelihood fit ("CLVTools advanced
techniques" vignette, CLVTools 0.12.1, 2025: 104-week estimation period, weekly, every covariate
on both processes) is reproduced here by cbcv's posterior mode under flat priors, and its
log-likelihood by cbcv's likelihood at CLVTools' estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest

from cbcv.data.summary import customer_summary
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.covariate_design import CovariateDesign
from cbcv.models.covariates import CovariateModel
from cbcv.models.pareto_nbd import ParetoNBDModel
from conftest import ROOT

APPAREL = ROOT / "data" / "raw" / "clvtools_apparel"
#: CLVTools' estimates (fit A of the vignette) and standard errors.
CLVTOOLS = {"r": (1.8378, 0.3455), "alpha": (92.9123, 16.9670), "s": (0.5920, 0.2609), "beta": (49.6227, 36.2509),
            "purchase[Gender=1]": (0.2859, 0.1041), "purchase[Channel=1]": (0.6241, 0.1050),
            "dropout[Gender=1]": (-0.6430, 0.2955), "dropout[Channel=1]": (0.7907, 0.3059)}
CLVTOOLS_LL = -5821.0627


@pytest.fixture(scope="module")
def apparel() -> pd.DataFrame:
    tx = pd.read_csv(APPAREL / "apparelTrans.csv", dtype={"Id": str})
    tx = tx.rename(columns={"Id": "customer_id", "Date": "date", "Price": "amount"})
    # CLVTools counts a purchase of 0 (one customer's first) as a purchase
    summary = customer_summary(tx, calibration_end="2006-12-31", time_unit="week", zero_amount_purchases=True)
    cov = pd.read_csv(APPAREL / "apparelStaticCov.csv", dtype={"Id": str})
    cov = cov.rename(columns={"Id": "customer_id"}).astype({"Gender": int, "Channel": int}).astype({"Gender": str,
                                                                                                   "Channel": str})
    return summary.merge(cov, on="customer_id", validate="1:1")


def test_the_apparel_summary_is_clvtools_estimation_period(apparel: pd.DataFrame) -> None:
    assert len(apparel) == 600 and (apparel["T"] == 104.0).all()  # everyone first bought on 2005-01-02
    assert int(apparel["x"].sum()) == 1266  # repeat purchase days in the 104 weeks, as CLVTools counts them


def test_pareto_nbd_with_static_covariates_matches_clvtools(apparel: pd.DataFrame) -> None:
    family = ParetoNBDModel(priors={k: Prior("HalfFlat") for k in ParetoNBDModel.param_names})
    design = CovariateDesign.from_frame(apparel, ["Gender", "Channel"], reference={"Gender": "0", "Channel": "0"})
    model = CovariateModel(family, design, effect_sigma=1e3)  # flat: the mode is the likelihood's maximum
    model.fit(apparel, SamplerSettings(method="map"))
    point = {k: float(v[0]) for k, v in model.draws().items()}
    for name, (value, se) in CLVTOOLS.items():
        assert point[name] == pytest.approx(value, abs=0.01 * se), name  # within a hundredth of a standard error
    # cbcv's log-likelihood at CLVTools' estimates is the log-likelihood CLVTools reports
    params = {n: pt.as_tensor_variable(np.float64(CLVTOOLS[n][0])) for n in family.param_names}
    for process, name in (("purchase", "purchase"), ("dropout", "dropout")):
        params[f"{process}_coef"] = pt.as_tensor_variable(np.array([CLVTOOLS[f"{name}[{e}]"][0] for e in design.effects]))
    assert float(model.total_logp(params, model.arrays).eval()) == pytest.approx(CLVTOOLS_LL, abs=0.01)
