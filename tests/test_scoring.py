"""The CLV scoring engine (cbcv.clv.scoring) against the prediction functions evaluated customer by
customer on the CDNOW sample; streamed summaries and validation to Parquet; the scale report page."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

from cbcv import clv as C
from cbcv import predict as P
from cbcv.clv.scoring import ScoringDraws, score_customers
from cbcv.core.discount import continuous_rate
from cbcv.core.errors import DataError
from cbcv.data.summary_files import sample_rows, summary_counts, write_summaries
from cbcv.models import BetaGeoModel, GammaGammaModel, ParetoNBDModel

BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)
PN = dict(r=0.553, alpha=10.578, s=0.606, beta=11.669)
GG = dict(p=6.25, q=3.74, gamma=15.44)
N_DRAWS = 40


def _posterior(cls, centre: dict[str, float], seed: int):
    """A model 'fitted' to N_DRAWS draws scattered around ``centre`` (lognormal, sd 10%)."""
    rng = np.random.default_rng(seed)
    model = cls()
    model.idata = az.from_dict(
        posterior={k: (v * np.exp(0.1 * rng.standard_normal(N_DRAWS)))[None, :] for k, v in centre.items()}
    )
    return model


def _direct(freq, spend, summary, margin, rate):
    """CLV per draw and customer straight from the prediction functions, customer by customer:
    margin × gamma-gamma expected spend × DERT (Fader, Hardie & Lee 2005, eq. 2 and 5)."""
    n = len(next(iter(freq.draws().values())))
    delta = np.full(n, continuous_rate(rate, "week"))
    return np.asarray(margin)[:, None] * P.expected_spend(spend, summary) * C.dert_draws(freq, summary, delta, n)


@pytest.fixture(scope="module", params=[(BetaGeoModel, BG), (ParetoNBDModel, PN)], ids=["bgnbd", "pareto"])
def both(request, cdnow_weekly, tmp_path_factory):
    cls, centre = request.param
    freq, spend = _posterior(cls, centre, 1), _posterior(GammaGammaModel, GG, 2)
    margin = np.linspace(0.25, 0.35, N_DRAWS)
    summary = cdnow_weekly.copy()
    summary["channel"] = np.where(np.arange(len(summary)) % 3 == 0, "web", "store")
    direct = _direct(freq, spend, summary, margin, 0.12)
    out = tmp_path_factory.mktemp("scored") / "customers.parquet"
    scored = score_customers(
        freq, spend, summary, out, margin=margin, annual_discount_rate=0.12, time_unit="week",
        horizon=39.0, interval_draws=N_DRAWS, max_bytes=2**20,  # small chunks: many of them
        group_by=("cohort", "channel"),
    )
    table = pd.read_parquet(out).set_index("customer_id").loc[summary["customer_id"]]
    return freq, summary, direct, scored, table


def test_totals_and_groups_equal_the_direct_predictions(both) -> None:
    """Scoring by distinct summary (P(alive) × the (x, T) factor, spend linear in z) against
    margin × spend × DERT evaluated for each customer and draw."""
    freq, summary, v, scored, table = both
    assert scored.n_customers == len(summary) == 2357
    assert scored.n_keys < len(summary) and scored.n_pairs <= scored.n_keys
    np.testing.assert_allclose(scored.total, v.sum(axis=1), rtol=1e-10)
    np.testing.assert_allclose(scored.group_draws["cohort"].sum(axis=1), v.sum(axis=1), rtol=1e-10)  # one cohort
    for label in ("web", "store"):
        group = (summary["channel"] == label).to_numpy()
        np.testing.assert_allclose(scored.group_draws["channel"][label], v[:, group].sum(axis=1), rtol=1e-9)
        assert scored.by("channel").set_index("channel").loc[label, "customers"] == group.sum()
    rank = table["rank"].to_numpy()
    decile = table["value_decile"].to_numpy()
    np.testing.assert_array_equal(np.sort(rank), np.arange(1, len(summary) + 1))
    assert (np.diff(v.mean(axis=0)[np.argsort(rank)]) <= 1e-9).all()  # ranked by posterior mean
    for d in (1, 4, 10):
        np.testing.assert_allclose(scored.group_draws["value_decile"][d], v[:, decile == d].sum(axis=1), rtol=1e-9)
    top = rank <= np.ceil(0.1 * len(summary))
    np.testing.assert_allclose(scored.top_share_draws["top 10%"], v[:, top].sum(axis=1) / v.sum(axis=1), rtol=1e-9)
    pa = P.p_alive(freq, summary)
    counts = np.stack([np.bincount(np.minimum((p * 10).astype(int), 9), minlength=10) for p in pa])
    np.testing.assert_array_equal(scored.p_alive_counts, counts)
    assert scored.by("channel")["share"].sum() == pytest.approx(1.0)


def test_per_customer_values_equal_the_direct_predictions(both) -> None:
    freq, summary, v, _, table = both
    np.testing.assert_allclose(table["clv_mean"], v.mean(axis=0), rtol=1e-9)
    for col, q in (("clv_median", 0.5), ("clv_low", 0.05), ("clv_high", 0.95)):
        np.testing.assert_allclose(table[col], np.quantile(v, q, axis=0), rtol=1e-9, atol=1e-12, err_msg=col)
    np.testing.assert_allclose(table["p_alive_mean"], P.p_alive(freq, summary).mean(axis=0), rtol=1e-9)
    expected = P.expected_purchases(freq, 39.0, summary).mean(axis=0)
    np.testing.assert_allclose(table["expected_mean"].to_numpy(), expected, rtol=1e-9)


def test_in_memory_and_on_disk_are_one_engine(cdnow_weekly, tmp_path) -> None:
    """customer_clv (customers kept in memory, every draw for the intervals) and score_customers
    (customers in a Parquet file, key order) give the same tables and customers."""
    freq, spend = _posterior(BetaGeoModel, BG, 3), _posterior(GammaGammaModel, GG, 4)
    mem = C.customer_clv(freq, spend, cdnow_weekly, margin=0.3, annual_discount_rate=0.1, time_unit="week",
                         max_draws=None)
    disk = score_customers(freq, spend, cdnow_weekly, tmp_path / "c.parquet", margin=0.3, interval_draws=N_DRAWS)
    np.testing.assert_array_equal(mem.total, disk.total)
    for col in ("cohort", "value_decile"):
        pd.testing.assert_frame_equal(mem.by(col), disk.by(col))
    pd.testing.assert_frame_equal(mem.p_alive_distribution(), disk.p_alive_distribution())
    pd.testing.assert_frame_equal(mem.lorenz(disk.lorenz_points), disk.lorenz())
    assert len(mem.lorenz()) == len(cdnow_weekly) + 1  # in memory: every rank
    np.testing.assert_array_equal(mem.mean_clv_histogram()[1], disk.mean_clv_histogram()[1])
    table = pd.read_parquet(tmp_path / "c.parquet").set_index("customer_id").loc[cdnow_weekly["customer_id"]]
    for col in ("clv_mean", "clv_low", "rank", "value_decile"):
        np.testing.assert_array_equal(mem.customers[col].to_numpy(), table[col].to_numpy())
    np.testing.assert_allclose(mem.draws.mean(axis=0), mem.customers["clv_mean"], rtol=1e-12)


def test_thinned_intervals_and_ready_draws(cdnow_weekly, tmp_path) -> None:
    freq, spend = _posterior(BetaGeoModel, BG, 3), _posterior(GammaGammaModel, GG, 4)
    draws = ScoringDraws.from_models(freq, spend, margin=0.3, annual_discount_rate=0.1, time_unit="week")
    full = score_customers(None, None, cdnow_weekly, tmp_path / "a.parquet", draws=draws, interval_draws=10)
    direct = _direct(freq, spend, cdnow_weekly, np.full(N_DRAWS, 0.3), 0.1)
    np.testing.assert_allclose(full.total, direct.sum(axis=1), rtol=1e-10)  # totals use every draw
    table = pd.read_parquet(tmp_path / "a.parquet")
    assert full.meta["interval_draws"] == 10
    assert (table["clv_low"] <= table["clv_mean"] * (1 + 1e-12)).mean() > 0.95
    assert (table["clv_low"] <= table["clv_high"]).all()
    assert "customer_id" not in full.top_customers(5).columns
    assert list(full.top_customers(5)["rank"]) == [1, 2, 3, 4, 5]


def test_bad_input_names_the_file_and_column(cdnow_weekly, tmp_path) -> None:
    freq, spend = _posterior(BetaGeoModel, BG, 3), _posterior(GammaGammaModel, GG, 4)
    with pytest.raises(DataError, match="missing column.*mean_repeat_spend"):
        score_customers(freq, spend, cdnow_weekly.drop(columns="mean_repeat_spend"), tmp_path / "b.parquet")
    bad = cdnow_weekly.copy()
    bad.loc[3, "t_x"] = bad.loc[3, "T"] + 1
    with pytest.raises(DataError, match="t_x"):
        score_customers(freq, spend, bad, tmp_path / "c.parquet")
    with pytest.raises(DataError, match="nope.parquet: file not found"):
        score_customers(freq, spend, tmp_path / "nope.parquet", tmp_path / "d.parquet")


def test_streamed_summaries_counts_and_a_counted_fit(cdnow_sample_tx, cdnow_weekly, tmp_path) -> None:
    tx = tmp_path / "tx.parquet"
    cdnow_sample_tx.to_parquet(tx)
    written = write_summaries(
        tx, tmp_path / "summary.parquet", calibration_end="1997-09-30", holdout_end="1998-06-30",
        memory_limit="512MB", threads=1, zero_amount_purchases=True,  # CDNOW's convention
    )
    on_disk = pd.read_parquet(written.path)
    assert written.n_customers == len(cdnow_weekly) == 2357
    pd.testing.assert_frame_equal(on_disk[list(cdnow_weekly.columns)], cdnow_weekly, check_dtype=False)
    counts = summary_counts(written)
    assert counts["count"].sum() == 2357 and len(counts) < 2357
    # a MAP fit on the counted rows equals the fit on the per-customer rows
    from cbcv.models.base import SamplerSettings

    map_ = SamplerSettings(method="map", progressbar=False)
    a, b = BetaGeoModel(), BetaGeoModel()
    a.fit(cdnow_weekly, map_)
    b.fit(counts, map_)
    for k in ("r", "alpha", "a", "b"):
        assert float(b.idata.posterior[k].mean()) == pytest.approx(float(a.idata.posterior[k].mean()), rel=1e-6)
    assert b.idata.attrs["n_customers"] == 2357 and b.idata.attrs["n_distinct"] == len(counts)
    assert a.point_loglike(BG) == pytest.approx(b.point_loglike(BG, counts), rel=1e-12)
    weekly = summary_counts(written, resolution=1.0)
    assert weekly["count"].sum() == 2357 and len(weekly) < len(counts)
    assert weekly.attrs["n_distinct_exact"] == len(counts) and weekly.attrs["resolution"] == 1.0
    assert (weekly["t_x"] <= weekly["T"]).all() and (weekly.loc[weekly["x"] == 0, "t_x"] == 0).all()
    assert np.allclose(weekly["T"], weekly["T"].round())
    c = BetaGeoModel()
    c.fit(weekly, map_)
    assert c.idata.attrs["resolution"] == 1.0 and c.idata.attrs["n_distinct_exact"] == len(counts)
    assert "resolution" not in b.idata.attrs  # exact counts: nothing to report
    # rounding to whole weeks moves r a little (0.243 -> about 0.23): an approximation, off by default
    assert 0.2 < float(c.idata.posterior["r"].mean()) < float(a.idata.posterior["r"].mean())
    sample = sample_rows(written, 300, where="x > 0", seed=7)
    assert len(sample) == 300 and (sample["x"] > 0).all()
    assert sample["customer_id"].is_unique
    pd.testing.assert_frame_equal(sample, sample_rows(written, 300, where="x > 0", seed=7))
    assert not sample["customer_id"].equals(sample_rows(written, 300, where="x > 0", seed=8)["customer_id"])
    # a date-like seed (a config's 20260101) no longer overflows DuckDB's 32-bit product
    big = sample_rows(written, 300, where="x > 0", seed=20260101)
    assert len(big) == 300 and not big["customer_id"].equals(sample["customer_id"])


def test_validate_to_parquet_equals_the_in_memory_loader(tmp_path) -> None:
    from cbcv.data.load import load_transactions, validate_to_parquet

    csv = tmp_path / "orders.csv"
    csv.write_text(
        "id,day,value\n"
        "a,2024-01-02,10\n"
        ",2024-01-03,5\n"          # missing id
        "b,2024-13-01,5\n"         # unparseable date
        "b,2024-02-01,abc\n"       # non-numeric amount
        "c,2025-06-01,7\n"         # after as-of
        "a,2024-01-02,10\n"        # exact duplicate
        "a,2024-01-02,-4\n"        # a return netted on the same day
        "d,2024-03-01,12.5\n"
    )
    kwargs = dict(columns={"customer_id": "id", "date": "day", "amount": "value"}, as_of="2024-12-31")
    mem = load_transactions(csv, **kwargs)
    out = validate_to_parquet(csv, tmp_path / "work" / "accepted.parquet", memory_limit="256MB", threads=1, **kwargs)
    assert out.reconciliation == mem.reconciliation
    assert out.reconciliation.rows_read == 8 == out.reconciliation.rows_accepted + out.reconciliation.rows_rejected
    pd.testing.assert_frame_equal(out.rejections, mem.rejections)
    on_disk = pd.read_parquet(out.accepted)
    pd.testing.assert_frame_equal(on_disk, mem.transactions, check_dtype=False)
    assert list(on_disk["source_row"]) == [1, 7, 8]


def test_report_page_from_aggregates_has_no_customer_ids(cdnow_weekly, tmp_path) -> None:
    from bs4 import BeautifulSoup

    from cbcv.report.scale import scored_base_html
    from cbcv.valuation.bridge import value_bridge
    from cbcv.valuation.inputs import FinancialDraws

    freq, spend = _posterior(BetaGeoModel, BG, 3), _posterior(GammaGammaModel, GG, 4)
    scored = score_customers(freq, spend, cdnow_weekly, tmp_path / "customers.parquet", horizon=52.0)
    files = scored.write_aggregates(tmp_path / "agg", top=7)
    assert np.load(files["clv_total"]).shape == (N_DRAWS,)
    fin = FinancialDraws.from_values(N_DRAWS, contribution_margin=0.3, discount_rate=0.1, shares_outstanding=1000.0)
    val = value_bridge(scored.total, None, fin)
    (tmp_path / "valuation.json").write_text(__import__("json").dumps(val.to_json_dict()))
    page = scored_base_html(tmp_path / "agg", tmp_path / "index.html", valuation=tmp_path / "valuation.json")
    text = page.read_text()
    soup = BeautifulSoup(text, "html.parser")
    assert len(soup.find_all("img")) == 2 and all(i["src"].startswith("data:image/png;base64,") for i in soup.find_all("img"))
    headings = [h.get_text() for h in soup.find_all("h2")]
    assert {"Value per share", "By value decile", "Concentration", "P(alive)"} <= set(headings)
    assert "Most valuable customers (anonymised, top 7)" in headings
    ids = set(cdnow_weekly["customer_id"].astype(str))
    cells = {td.get_text().strip() for td in soup.find_all("td")}
    assert "customer_id" not in text and not (cells & ids)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd"])
def test_dert_interpolated_in_T_equals_direct_evaluation(name) -> None:
    """Hundreds of distinct T per x (a large base observed daily): Chebyshev interpolation in
    log(α + T) against the quadrature at every pair."""
    rng = np.random.default_rng(0)
    p = {k: v * np.exp(0.05 * rng.standard_normal((20, 1))) for k, v in dict(r=0.9, alpha=4.3, a=0.5, b=3.8).items()}
    x = np.repeat([0.0, 1.0, 7.0, 40.0, 170.0], 300)[None, :]
    T = np.tile(np.linspace(0.0, 104.0, 300), 5)[None, :]
    T = np.where(x > 100, np.maximum(T, 60.0), T)  # heavy buyers are old customers
    delta = continuous_rate(0.1, "week")
    direct = P.dert_given_alive(name, p, x, T, delta)
    for grid in (12, 16):
        got = P.dert_given_alive(name, p, x, T, delta, grid=grid)
        np.testing.assert_allclose(got, direct, rtol=1e-7)
    few = P.dert_given_alive(name, p, x[:, ::100], T[:, ::100], delta, grid=16)  # ≤ grid T per x: direct
    np.testing.assert_allclose(few, direct[:, ::100], rtol=1e-14)
