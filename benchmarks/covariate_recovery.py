"""Coverage of the simulated customer-experience effects over seeds (a study, not a timing).

For each seed: the simulated company of :mod:`cbcv.data.simulate.experience`, its survey mapped
to promoter / passive / detractor / not surveyed, BG/NBD and gamma-gamma with the group as a
covariate, fitted by NUTS as ``cbcv fit --covariates`` does (2 chains x 500 draws). Prints, per
effect, the truth, the posterior mean, the 94% HDI and whether it covers the truth, and the
share of effects covered per seed.

    .venv/bin/python benchmarks/covariate_recovery.py --seeds 20261207 1 2 3 4 5 --customers 8000
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from cbcv.data.simulate.experience import simulate_cx_company
from cbcv.data.summary import customer_summary
from cbcv.data.survey import nps_groups, survey_covariate
from cbcv.models import SamplerSettings
from cbcv.pipeline.workflow import fit_record, fit_with_covariates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[20261207, 1, 2, 3, 4, 5])
    parser.add_argument("--customers", type=int, default=8000)
    parser.add_argument("--unit", default="week")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        company = simulate_cx_company(args.customers, seed=seed)
        summary = customer_summary(company.transactions, calibration_end=company.calibration_end.date(),
                                   time_unit=args.unit)
        table = survey_covariate(summary["customer_id"], nps_groups(company.survey, company.calibration_end.date()))
        truth = company.true_effects()
        for name in ("bgnbd", "gamma_gamma"):
            model, _ = fit_with_covariates(summary, name, SamplerSettings(draws=500, tune=500, chains=2, seed=seed),
                                           table, {"nps": "passive"})
            for key, stats in fit_record(model)["parameters"].items():
                if key in truth:
                    rows.append({"seed": seed, "model": name, "effect": key, "truth": truth[key],
                                 "mean": stats["mean"], "hdi_low": stats["hdi_low"], "hdi_high": stats["hdi_high"],
                                 "covered": stats["hdi_low"] <= truth[key] <= stats["hdi_high"]})
    frame = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(frame.round(3).to_string(index=False))
    print(json.dumps({str(k): float(v) for k, v in frame.groupby("seed")["covered"].mean().items()}))
    print(frame.assign(bias=frame["mean"] - frame["truth"]).groupby("effect")[["bias"]].mean().round(3).to_string())


if __name__ == "__main__":
    main()
