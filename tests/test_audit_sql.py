"""The audit is one query whatever the source: over a Parquet file (or glob), with a memory cap
and one thread, it gives table for table what it gives over the DataFrame; on the bundled
CDNOW sample and on a simulated log with returns, same-day rows, return-only days, net-negative
days, spend ties and several cohorts."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbcv.audit import CustomerBaseAudit, customer_base_audit
from cbcv.audit import customer_base_audit as audit_file  # the same audit, over a Parquet path
from cbcv.core.errors import ConfigError, DataError

CDNOW_CALIBRATION_END = dt.date(1997, 9, 30)
CDNOW_HOLDOUT_END = dt.date(1998, 6, 30)
TABLES = ("cohorts", "c3", "repeat", "deciles", "whale", "interpurchase", "interpurchase_stats")


def _write(tx: pd.DataFrame, path: Path) -> Path:
    tx[["customer_id", "date", "amount"]].to_parquet(path, index=False)
    return path


def _windows(tx: pd.DataFrame, calibration_end: dt.date, holdout_end: dt.date):
    """Decile window and migration pair as :func:`cbcv.pipeline.workflow.audit_windows` builds them."""
    calibration = (tx["date"].min().date(), calibration_end)
    holdout = (calibration_end + dt.timedelta(days=1), holdout_end)
    return calibration, (calibration, holdout)


def assert_same_audit(expected: CustomerBaseAudit, got: CustomerBaseAudit) -> None:
    """Every table equal (dtypes included; floats to 1e-9 relative), the concentration figures
    equal to 1e-9 and the migration cross-tabs equal."""
    for name in TABLES:
        pd.testing.assert_frame_equal(
            getattr(got, name), getattr(expected, name), rtol=1e-9, atol=1e-12, obj=name
        )
    want, have = dataclasses.asdict(expected.concentration), dataclasses.asdict(got.concentration)
    for key, value in want.items():
        if isinstance(value, float):
            assert have[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
        else:
            assert have[key] == value, key
    assert (got.migration is None) == (expected.migration is None)
    if expected.migration is not None:
        pd.testing.assert_frame_equal(got.migration.counts, expected.migration.counts)
        pd.testing.assert_frame_equal(
            got.migration.row_shares, expected.migration.row_shares, rtol=1e-12
        )
        assert (got.migration.period_1, got.migration.period_2) == (
            expected.migration.period_1,
            expected.migration.period_2,
        )


@pytest.fixture(scope="module")
def cdnow(cdnow_sample_tx, tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """The bundled CDNOW sample and its accepted log as Parquet."""
    tx = cdnow_sample_tx
    return tx, _write(tx, tmp_path_factory.mktemp("cdnow") / "cdnow.parquet")


def _simulated_log(seed: int = 7, n_customers: int = 400) -> pd.DataFrame:
    """Customers acquired over 1997-1998 (several cohorts at any period), each with a few
    purchase days; amounts from a short price list (many spend ties); some days have several
    rows, some a return (a few larger than the day's purchases: net-negative days), and some
    days hold only returns (not purchase days)."""
    rng = np.random.default_rng(seed)
    prices = np.array([5.0, 9.99, 10.0, 12.5, 20.0, 49.95])
    rows: list[tuple[str, pd.Timestamp, float]] = []
    start = pd.Timestamp("1997-01-01")
    for i in range(n_customers):
        cid = f"c{i:04d}"
        first = start + pd.Timedelta(days=int(rng.integers(0, 700)))
        gaps = rng.geometric(1 / 40, size=rng.poisson(2.0))
        for day in first + pd.to_timedelta(np.concatenate([[0], np.cumsum(gaps)]), unit="D"):
            if day > pd.Timestamp("1998-12-31"):
                break
            for _ in range(1 + int(rng.random() < 0.2)):  # same-day rows
                rows.append((cid, day, float(rng.choice(prices))))
            if rng.random() < 0.1:  # a return, sometimes larger than the day's purchases
                rows.append((cid, day, -float(rng.choice(prices))))
        if rng.random() < 0.08:  # a day with only returns
            rows.append((cid, first + pd.Timedelta(days=3), -float(rng.choice(prices))))
    tx = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    return tx.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    tx = _simulated_log()
    return tx, _write(tx, tmp_path_factory.mktemp("sim") / "sim.parquet")


def test_simulated_log_has_the_awkward_cases(simulated):
    tx, _ = simulated
    day = tx.groupby(["customer_id", "date"])["amount"].agg(["size", "sum", "max"])
    assert (day["size"] > 1).any()  # same-day rows
    assert (day["max"] < 0).any()  # return-only days
    assert ((day["sum"] < 0) & (day["max"] >= 0)).any()  # net-negative purchase days
    assert tx["date"].dt.to_period("Q").nunique() >= 8


@pytest.mark.parametrize("period", ["quarter", "month"])
def test_cdnow_whole_log(cdnow, period):
    tx, path = cdnow
    assert_same_audit(customer_base_audit(tx, period=period), audit_file(path, period=period))


@pytest.mark.parametrize("period", ["quarter", "month"])
def test_cdnow_calibration_window_and_migration(cdnow, period):
    tx, path = cdnow
    window, migration = _windows(tx, CDNOW_CALIBRATION_END, CDNOW_HOLDOUT_END)
    kwargs = {"period": period, "window": window, "migration": migration}
    got = audit_file(path, **kwargs)
    assert_same_audit(customer_base_audit(tx, **kwargs), got)
    assert got.migration.counts.to_numpy().sum() == got.concentration.customers


@pytest.mark.parametrize(
    "kwargs",
    [
        {"period": "quarter"},
        {"period": "month", "window": "1998"},
        {"period": "quarter", "cohort_period": "year", "window": "1997Q3", "bin_days": 30},
        {"period": "week", "cohort_period": "Q-JUN", "migration": ("1997", "1998")},
        {"period": "month", "migration": ("1998Q4", ("1999-01-01", "1999-12-31"))},
    ],
    ids=["quarter", "month-window", "yearly-cohorts", "week-fiscal", "inactive-holdout"],
)
def test_simulated_log(simulated, kwargs):
    tx, path = simulated
    expected = customer_base_audit(tx, **kwargs)
    got = audit_file(path, **kwargs)
    assert_same_audit(expected, got)
    # every purchase day nets above zero, so no buyer has a negative spend to clip
    assert got.concentration.negative_customers == 0


def test_simulated_calibration_and_holdout(simulated):
    tx, path = simulated
    window, migration = _windows(tx, dt.date(1997, 12, 31), dt.date(1998, 12, 31))
    for period in ("quarter", "month"):
        kwargs = {"period": period, "window": window, "migration": migration}
        assert_same_audit(customer_base_audit(tx, **kwargs), audit_file(path, **kwargs))


def test_as_of_matches_pandas(simulated):
    tx, path = simulated
    kwargs = {"period": "quarter", "as_of": "1998-06-15", "window": ("1998-01-01", "1998-06-15")}
    assert_same_audit(customer_base_audit(tx, **kwargs), audit_file(path, **kwargs))


def test_glob_of_files_and_threads(simulated, tmp_path):
    tx, _ = simulated
    half = tx["customer_id"] < "c0200"
    _write(tx[half], tmp_path / "part-0.parquet")
    _write(tx[~half], tmp_path / "part-1.parquet")
    got = audit_file(tmp_path / "part-*.parquet", period="month", window="1998", threads=1)
    assert_same_audit(customer_base_audit(tx, period="month", window="1998"), got)


def test_whale_points_keep_exact_points_of_the_curve(cdnow):
    _, path = cdnow
    full = audit_file(path, window="1997")
    thin = audit_file(path, window="1997", whale_points=50)
    assert len(thin.whale) == 51
    assert thin.whale["customers"].iloc[[0, -1]].tolist() == [0, full.concentration.customers]
    merged = thin.whale.merge(full.whale, on="customers", suffixes=("", "_full"))
    assert len(merged) == 51
    np.testing.assert_allclose(merged["revenue_share"], merged["revenue_share_full"], rtol=1e-12)
    assert thin.concentration == full.concentration


def test_memory_limit_is_honoured(cdnow, monkeypatch):
    import cbcv.audit.engine as module

    settings = []
    opened = module.scratch_connection

    @contextlib.contextmanager
    def spy(**kwargs):
        with opened(**kwargs) as con:
            query = "SELECT current_setting('memory_limit'), current_setting('threads')"
            settings.append(con.execute(query).fetchall()[0])
            yield con

    monkeypatch.setattr(module, "scratch_connection", spy)
    tx, path = cdnow
    got = audit_file(path, period="month", memory_limit="500MB", threads=1)
    assert settings == [("476.8 MiB", 1)]  # 500 MB in DuckDB's units
    assert_same_audit(customer_base_audit(tx, period="month"), got)
    with pytest.raises(ConfigError, match="memory_limit"):
        audit_file(path, memory_limit="lots")


@pytest.mark.parametrize("period", ["2Q", "fortnight"])
def test_unsupported_period_is_a_config_error(cdnow, period):
    _, path = cdnow
    with pytest.raises(ConfigError, match="period"):
        audit_file(path, period=period)


def test_bad_sources_and_empty_windows(cdnow, tmp_path):
    tx, path = cdnow
    with pytest.raises(DataError, match="file not found"):
        audit_file(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    tx[["customer_id", "date"]].assign(value=1.0).to_parquet(bad, index=False)
    with pytest.raises(DataError, match="amount"):
        audit_file(bad)
    with pytest.raises(DataError, match="nothing to rank"):
        audit_file(path, window="2005")
    with pytest.raises(DataError, match="no purchase occasions"):
        audit_file(path, as_of="1990-01-01")


def test_ties_equal_but_for_float_rounding_follow_the_documented_rule(tmp_path):
    """0.7 + 0.1 is 0.7999999999999999 in floats: it ties with one purchase of 0.8, and the buyer
    with more purchase days ranks first in both engines (not whichever float is larger)."""
    rows = [("x", "1997-03-01", 0.7), ("x", "1997-03-02", 0.1), ("y", "1997-03-01", 0.8)]
    rows += [(f"c{i}", "1997-03-03", 0.1 * i) for i in range(1, 9)]
    tx = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    tx["date"] = pd.to_datetime(tx["date"])
    expected = customer_base_audit(tx, window="1997")
    got = audit_file(_write(tx, tmp_path / "ties.parquet"), window="1997")
    assert got.deciles["transactions"].tolist()[:2] == [2, 1]  # x (two days) is decile 1
    assert_same_audit(expected, got)


def test_one_buyer_without_repeats_and_a_log_of_returns_only(tmp_path):
    one = pd.DataFrame(
        {"customer_id": ["a"], "date": pd.to_datetime(["2020-01-01"]), "amount": [3.0]}
    )
    got = audit_file(_write(one, tmp_path / "one.parquet"))
    assert got.interpurchase.empty and got.interpurchase_stats["repeat_purchases"].item() == 0
    assert_same_audit(customer_base_audit(one), got)
    returns = one.assign(amount=-3.0)
    with pytest.raises(DataError, match="no purchase occasions"):
        audit_file(_write(returns, tmp_path / "returns.parquet"))
