"""A simulated company whose customers' experience (Net Promoter Score) changes how they buy.

Every customer belongs to one experience group — ``promoter``, ``passive``, ``detractor`` or
``not surveyed`` — and buys by the BG/NBD story with gamma-gamma spend, the group scaling three
things against the ``passive`` reference (:class:`GroupEffect`): the mean purchase rate (α
divided by ``purchase``), the dropout shape ``a`` (multiplied by ``dropout_shape``) and the mean
spend (γ multiplied by ``spend``). The true effects in the terms ``fit.json`` reports them
(:meth:`CXCompany.true_effects`: log ratios of the mean purchase rate, the mean dropout
probability and the mean spend per transaction) follow from those.

The survey answers (``customer_id``, ``date``, ``score`` 0–10, ``touchpoint``) are drawn to be
consistent with the groups: each surveyed customer's *latest* answer before the calibration end
falls in the group's score band (promoter 9–10, passive 7–8, detractor 0–6); some customers also
answered earlier, with any score, so that only the latest answer tells the group. Each customer
also has an owner (a sales rep within a region) for the value-by-owner tables.

Everything here is simulated, and labelled so wherever it is shown: no survey answer is invented
for a real data set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from cbcv.data.simulate.logs import simulate_transactions
from cbcv.data.simulate.params import BGNBDParams, GammaGammaParams

#: The experience groups, the reference first.
GROUPS: tuple[str, ...] = ("passive", "promoter", "detractor", "not surveyed")
#: Score bands of the Net Promoter Score (inclusive).
BANDS: Mapping[str, tuple[int, int]] = MappingProxyType({"detractor": (0, 6), "passive": (7, 8), "promoter": (9, 10)})
TOUCHPOINTS: tuple[str, ...] = ("purchase", "service call", "sales call")


@dataclass(frozen=True)
class GroupEffect:
    """A group's multipliers against the reference: of the mean purchase rate, of the dropout
    shape ``a`` and of the mean spend; ``share`` is the group's share of customers."""

    share: float
    purchase: float = 1.0
    dropout_shape: float = 1.0
    spend: float = 1.0


DEFAULT_GROUPS: Mapping[str, GroupEffect] = MappingProxyType({
    "passive": GroupEffect(0.35),
    "promoter": GroupEffect(0.30, purchase=1.5, dropout_shape=0.6, spend=1.2),
    "detractor": GroupEffect(0.20, purchase=0.7, dropout_shape=1.6, spend=0.85),
    "not surveyed": GroupEffect(0.15, purchase=0.9, dropout_shape=1.1, spend=1.0),
})


@dataclass(frozen=True)
class CXCompany:
    """The simulated company: its purchase log, survey answers, owners and the truth."""

    transactions: pd.DataFrame  # customer_id, date, amount
    survey: pd.DataFrame  # customer_id, date, score, touchpoint
    owners: pd.DataFrame  # customer_id, rep, region
    groups: pd.Series  # each customer's true experience group, by customer_id
    params: BGNBDParams
    spend: GammaGammaParams
    effects: Mapping[str, GroupEffect] = field(default_factory=lambda: DEFAULT_GROUPS)
    calibration_end: pd.Timestamp = pd.Timestamp("2025-06-30")

    def true_effects(self, column: str = "nps") -> dict[str, float]:
        """The true effects by their ``fit.json`` names (BG/NBD and gamma-gamma), each group
        against the reference ``passive``."""
        a, b = self.params.a, self.params.b
        out = {}
        for group, eff in self.effects.items():
            if group == GROUPS[0]:
                continue
            shaped = a * eff.dropout_shape
            out[f"purchase[{column}={group}]"] = float(np.log(eff.purchase))
            out[f"dropout[{column}={group}]"] = float(np.log(shaped / (shaped + b)) - np.log(a / (a + b)))
            out[f"spend[{column}={group}]"] = float(np.log(eff.spend))
        return out


def simulate_cx_company(
    n_customers: int = 8000,
    *,
    seed: int = 1,
    start: str = "2024-01-01",
    acquisition_end: str = "2024-06-30",
    calibration_end: str = "2025-06-30",
    end: str = "2025-12-31",
    params: BGNBDParams | None = None,
    spend: GammaGammaParams | None = None,
    effects: Mapping[str, GroupEffect] = DEFAULT_GROUPS,
    reps: int = 12,
) -> CXCompany:
    """Simulate the company (see the module docstring); weekly time unit, ids ``0000`` ....
    Seed 1 is the company the tests keep (tests/test_covariates.py)."""
    params = params or BGNBDParams(r=0.6, alpha=4.0, a=0.8, b=2.4)
    spend = spend or GammaGammaParams(p=6.0, q=4.0, gamma=15.0)
    if set(effects) != set(GROUPS):
        raise ValueError(f"effects: give exactly the groups {', '.join(GROUPS)}")
    rng = np.random.default_rng(seed)
    shares = np.array([effects[g].share for g in GROUPS], dtype=float)
    counts = np.floor(shares / shares.sum() * n_customers).astype(int)
    counts[0] += n_customers - counts.sum()
    logs, groups = [], []
    offset = 0
    for i, group in enumerate(GROUPS):
        eff = effects[group]
        sim = simulate_transactions(
            BGNBDParams(r=params.r, alpha=params.alpha / eff.purchase, a=params.a * eff.dropout_shape, b=params.b),
            int(counts[i]), start=start, acquisition_end=acquisition_end, end=end, time_unit="week",
            spend=GammaGammaParams(p=spend.p, q=spend.q, gamma=spend.gamma * eff.spend), seed=seed + 1 + i,
        )
        tx = sim.transactions.copy()
        tx["customer_id"] = tx["customer_id"].astype(int) + offset
        logs.append(tx)
        groups.append(pd.Series(group, index=np.arange(offset, offset + counts[i])))
        offset += int(counts[i])
    width = len(str(n_customers - 1))
    transactions = pd.concat(logs, ignore_index=True)
    transactions["customer_id"] = transactions["customer_id"].astype(str).str.zfill(width)
    truth = pd.concat(groups)
    truth.index = truth.index.astype(str).str.zfill(width)
    first = transactions.groupby("customer_id")["date"].min()
    cal_end = pd.Timestamp(calibration_end)
    survey = _survey(truth, first, cal_end, rng)
    owners = _owners(truth.index, reps, rng)
    return CXCompany(transactions.sort_values(["customer_id", "date"], ignore_index=True), survey, owners,
                     truth.rename("group"), params, spend, effects, cal_end)


def _survey(groups: pd.Series, first: pd.Series, cal_end: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
    """Each surveyed customer's latest answer before ``cal_end`` in its group's band, and for
    a third of them an earlier answer with any score; a few answers after ``cal_end`` too."""
    rows = []
    for cid, group in groups.items():
        if group == "not surveyed":
            continue
        lo, hi = BANDS[group]
        start = first[cid]
        span = max((cal_end - start).days, 2)
        last_day = int(rng.integers(span // 2, span + 1))
        rows.append((cid, start + pd.Timedelta(days=last_day), int(rng.integers(lo, hi + 1))))
        if rng.random() < 1 / 3:
            rows.append((cid, start + pd.Timedelta(days=int(rng.integers(0, span // 2))), int(rng.integers(0, 11))))
        if rng.random() < 0.1:  # after the calibration end: must not be used
            rows.append((cid, cal_end + pd.Timedelta(days=int(rng.integers(1, 90))), int(rng.integers(0, 11))))
    survey = pd.DataFrame(rows, columns=["customer_id", "date", "score"])
    survey["touchpoint"] = rng.choice(TOUCHPOINTS, len(survey))
    return survey.sort_values(["date", "customer_id"], ignore_index=True)


def _owners(ids: pd.Index, reps: int, rng: np.random.Generator) -> pd.DataFrame:
    rep = rng.integers(0, reps, len(ids))
    regions = np.array(["North", "South", "East", "West"])
    return pd.DataFrame({"customer_id": ids, "rep": [f"rep {i + 1:02d}" for i in rep],
                         "region": regions[rep % len(regions)]})


#: The demo company of ``configs/cx-demo.yaml`` (simulated): customers acquired all through
#: 2024-2025, surveyed up to mid-2025 and after, observed to the end of 2025.
DEMO = MappingProxyType({"n_customers": 6000, "seed": 20261207, "start": "2024-01-01",
                         "acquisition_end": "2025-12-15", "calibration_end": "2025-06-30", "end": "2025-12-31"})


def write_demo(folder: str) -> list[str]:
    """Write the demo company's ``transactions.csv``, ``survey.csv`` and ``owners.csv`` (all
    simulated) to ``folder``; the names of the files written."""
    from pathlib import Path

    from cbcv.core.safe_csv import write_csv

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    company = simulate_cx_company(**DEMO)  # type: ignore[arg-type]
    tx = company.transactions.assign(date=company.transactions["date"].dt.strftime("%Y-%m-%d"),
                                     amount=company.transactions["amount"].round(2))
    survey = company.survey.assign(date=company.survey["date"].dt.strftime("%Y-%m-%d"))
    files = {"transactions.csv": tx, "survey.csv": survey, "owners.csv": company.owners}
    for name, frame in files.items():
        write_csv(frame, out / name)
    return list(files)


if __name__ == "__main__":
    import sys

    print(", ".join(write_demo(sys.argv[1] if len(sys.argv) > 1 else "data/raw/cx_demo")))
