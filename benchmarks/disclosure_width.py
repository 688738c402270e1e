"""How wide is a valuation from disclosures against one from the customer-level log? (issue 16)

Not a speed benchmark: a study of the check in ``tests/test_disclosure_report.py`` over designs
and seeds. A company is simulated customer by customer (:mod:`cbcv.data.simulate.disclosures`:
finite-market acquisition, Pareto/NBD purchasing, gamma-gamma spend), its quarterly disclosures
are fitted by :class:`cbcv.models.disclosures.DisclosureModel` and its log by Pareto/NBD and
gamma-gamma, and the existing customers' equity of each (margin 30%, 10% a year, run off over
100 years) is compared with the truth at the known parameters
(:func:`cbcv.valuation.truth.true_customer_equity`). One JSON line per run on stdout::

    python benchmarks/disclosure_width.py --quarters 24 --seed 7
    python benchmarks/disclosure_width.py --story period --quarters 16 --seed 7
    python benchmarks/disclosure_width.py --quarters 16 --beta 40 --series active_customers,orders,revenue

About four minutes a run on 2 cores (both NUTS fits by nutpie).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cbcv.clv import customer_clv
from cbcv.data.disclosures import load_disclosures
from cbcv.data.simulate import GammaGammaParams, ParetoNBDParams
from cbcv.data.simulate.acquisitions import AcquisitionParams
from cbcv.data.simulate.disclosures import (
    PeriodCustomers,
    simulate_disclosing_company,
    simulate_period_company,
)
from cbcv.data.summary import customer_summary
from cbcv.models import GammaGammaModel, ParetoNBDModel, SamplerSettings
from cbcv.models.disclosures import DisclosureModel
from cbcv.valuation.disclosure_truth import true_existing_equity
from cbcv.valuation.disclosures import DisclosureEquity
from cbcv.valuation.truth import true_customer_equity

MARGIN, RATE, UNIT = 0.3, 0.10, "week"
TAIL_QUARTERS = 400


def run(args: argparse.Namespace) -> dict[str, object]:
    acquisition = AcquisitionParams(market=args.market, never=0.8, rate=0.06)
    spend = GammaGammaParams(p=6.0, q=4.0, gamma=15.0)
    if args.story == "pareto":
        purchasing = ParetoNBDParams(r=0.8, alpha=6.4, s=args.s, beta=args.beta)
        sim = simulate_disclosing_company(acquisition, purchasing, spend, start=args.start,
                                          n_periods=args.quarters, seed=args.seed)
        log, disclosures = sim.log.transactions, sim.disclosures
        summary = customer_summary(log, calibration_end=sim.as_of, time_unit=UNIT)
        truth = true_customer_equity(summary, purchasing, spend, MARGIN, RATE, UNIT)
    else:
        behaviour = PeriodCustomers(a=args.churn * args.kappa, b=(1 - args.churn) * args.kappa, m=1.5, r=1.0)
        psim = simulate_period_company(acquisition, behaviour, spend, start=args.start, n_periods=args.quarters,
                                       seed=args.seed)
        log, disclosures = psim.transactions, psim.disclosures
        summary = customer_summary(log, calibration_end=psim.as_of, time_unit=UNIT)
        truth = true_existing_equity(psim, margin=MARGIN, annual_discount_rate=RATE, periods=TAIL_QUARTERS)
    series = args.series.split(",")
    table = load_disclosures(disclosures[["period", *series]], period="quarter").table
    start = time.perf_counter()
    model = DisclosureModel(acquisition.market, retention=args.retention, marketing=False)
    model.fit(table, SamplerSettings(draws=500, tune=1000, chains=2, seed=args.seed, target_accept=0.95,
                                     nuts_sampler="nutpie"))
    equity = DisclosureEquity(model, 0, TAIL_QUARTERS, "quarter", None, 500)
    disclosed = MARGIN * equity.revenue_pv("existing", 1.0, np.full(len(equity.paths().acquired), RATE))
    out: dict[str, object] = {"story": args.story, "quarters": args.quarters, "seed": args.seed,
                              "series": series, "customers": len(summary), "truth": truth,
                              "disclosures_fit_s": round(time.perf_counter() - start, 1),
                              "disclosures_divergences": model.divergences()}
    lo, med, hi = np.quantile(disclosed, [0.05, 0.5, 0.95])
    out["disclosures"] = {"low": lo, "median": med, "high": hi, "covers": bool(lo <= truth <= hi)}
    if not args.skip_customer_level:
        freq = ParetoNBDModel()
        freq.fit(summary[["x", "t_x", "T"]], SamplerSettings(draws=300, tune=300, chains=2, seed=args.seed,
                                                             nuts_sampler="nutpie"))
        gg = GammaGammaModel()
        gg.fit(summary, SamplerSettings(draws=500, tune=500, chains=2, seed=args.seed))
        total = customer_clv(freq, gg, summary, margin=MARGIN, annual_discount_rate=RATE, time_unit=UNIT,
                             max_draws=100, keep_draws=False).total
        clo, cmed, chi = np.quantile(total, [0.05, 0.5, 0.95])
        out["customer_level"] = {"low": clo, "median": cmed, "high": chi, "covers": bool(clo <= truth <= chi)}
        out["width_ratio"] = (hi - lo) / (chi - clo)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quarters", type=int, default=24)
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--market", type=int, default=100_000)
    parser.add_argument("--story", default="pareto", choices=["pareto", "period"],
                        help="pareto: Pareto/NBD customers; period: sBG churn at period ends, Poisson orders")
    parser.add_argument("--churn", type=float, default=0.15, help="period story: mean churn a / (a + b)")
    parser.add_argument("--kappa", type=float, default=3.0, help="period story: a + b")
    parser.add_argument("--s", type=float, default=2.0, help="Pareto/NBD dropout-rate shape")
    parser.add_argument("--beta", type=float, default=80.0, help="Pareto/NBD dropout-rate scale (weeks)")
    parser.add_argument("--retention", default="sbg", choices=["sbg", "bdw"])
    parser.add_argument("--series", default="new_customers,active_customers,orders,revenue")
    parser.add_argument("--skip-customer-level", action="store_true")
    print(json.dumps(run(parser.parse_args()), default=float))


if __name__ == "__main__":
    main()
