"""The Spark engine gives the validation and summaries that DuckDB gives (CDNOW, a hand-written
CSV with one row of each rejection reason, a simulated Parquet log), and the config chooses it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java on PATH", allow_module_level=True)

from pyspark.sql import functions as F  # noqa: E402

from cbcv.config import parse_config  # noqa: E402
from cbcv.core.errors import ConfigError, DataError  # noqa: E402
from cbcv.data.datasets import load_dataset, read_dataset_frame  # noqa: E402
from cbcv.data.load import load_transactions  # noqa: E402
from cbcv.data.simulate import BGNBDParams, GammaGammaParams, write_parquet  # noqa: E402
from cbcv.data.spark import (  # noqa: E402
    calibration_holdout_spark,
    customer_summary_spark,
    load_result_to_pandas,
    load_transactions_spark,
    spark_date_pattern,
    spark_session,
    summary_to_pandas,
    to_spark_transactions,
)
from cbcv.data.summary import calibration_holdout, customer_summary  # noqa: E402
from cbcv.pipeline.company_data import CompanyData, SummarySettings  # noqa: E402
from cbcv.pipeline.workflow import validate_source  # noqa: E402

CAL_END, HOLDOUT_END = "1997-09-30", "1998-06-30"

# PySpark 4 warns that it does not yet fully support pandas 3; the conversions used here work.
pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="session")
def spark():
    session = spark_session("local[2]", app_name="cbcv-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# ----------------------------------------------------------------------------- helpers


def assert_same_load(duck, spark_result) -> None:
    """Reconciliation counts, rejected rows with their reasons, and accepted rows agree."""
    got = load_result_to_pandas(spark_result)
    a, b = duck.reconciliation, got.reconciliation
    for name in (
        "rows_read",
        "rows_accepted",
        "rows_rejected",
        "rejected_by_reason",
        "n_customers",
        "customer_days",
        "first_date",
        "last_date",
        "as_of",
        "columns",
        "duplicate_check",
        "source",
        "source_type",
        "sha256",
        "notes",
        "zero_amount_purchases",
    ):
        assert getattr(b, name) == getattr(a, name), name
    assert dataclasses.replace(b.returns, amount=0.0) == dataclasses.replace(a.returns, amount=0.0)
    assert b.returns.amount == pytest.approx(a.returns.amount, abs=1e-9)
    assert b.total_amount == pytest.approx(a.total_amount, rel=1e-12)
    pd.testing.assert_frame_equal(got.transactions, duck.transactions)
    keys = ["source_row", "line", "column", "raw_value", "reason", "primary"]
    pd.testing.assert_frame_equal(got.rejections[keys], duck.rejections[keys])
    # details are the same but for malformed rows (Spark's CSV parser gives a generic one)
    fields = duck.rejections["reason"] != "malformed_row"
    pd.testing.assert_series_equal(got.rejections["detail"][fields], duck.rejections["detail"][fields])


def assert_same_summary(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    for col in ("cohort", "first_purchase", "last_purchase", "x", "n_transactions", "x_holdout"):
        if col in want:
            pd.testing.assert_series_equal(got[col], want[col])
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- CDNOW


@pytest.fixture(scope="module")
def cdnow_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cdnow") / "cdnow_sample.csv"
    read_dataset_frame("cdnow-sample").to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cdnow_spark(spark, cdnow_csv):
    # Small splits, so that the file is read by several tasks: row numbers must still be exact.
    spark.conf.set("spark.sql.files.maxPartitionBytes", "32k")
    try:
        splits = spark.read.text(str(cdnow_csv)).select("_metadata.file_block_start").distinct()
        assert splits.count() > 1
        result = load_transactions_spark(spark, cdnow_csv, reject_duplicates=False)
        collected = load_result_to_pandas(result)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    yield result, collected
    result.unpersist()


def test_cdnow_validation_matches_duckdb(cdnow_csv, cdnow_spark) -> None:
    result, _ = cdnow_spark
    duck = load_transactions(cdnow_csv, reject_duplicates=False)
    assert duck.reconciliation.rows_read == 6919
    assert_same_load(duck, result)
    # and the accepted rows are those of the bundled data set as cbcv.data.datasets loads it
    bundled = load_dataset("cdnow-sample").transactions
    pd.testing.assert_frame_equal(load_result_to_pandas(result).transactions, bundled)


def test_cdnow_summaries_match_duckdb(spark, cdnow_spark) -> None:
    result, _ = cdnow_spark
    bundled = load_dataset("cdnow-sample").transactions
    rule = {"zero_amount_purchases": True}  # the papers count CDNOW's $0 purchases
    want = calibration_holdout(
        bundled, calibration_end=CAL_END, holdout_end=HOLDOUT_END, time_unit="week", **rule
    )
    got = summary_to_pandas(
        calibration_holdout_spark(
            spark, result.transactions, calibration_end=CAL_END, holdout_end=HOLDOUT_END, **rule
        )
    )
    assert len(want) == 2357 and set(got["customer_id"]) == set(want["customer_id"])
    assert (got["x"] == want["x"]).all() and (got["x_holdout"] == want["x_holdout"]).all()
    assert_same_summary(got, want)
    # the other dialect switches: monthly times, month cohorts, an observation start
    kwargs = {
        "calibration_end": CAL_END,
        "time_unit": "month",
        "cohort_period": "month",
        "observation_start": "1997-02-01",
    }
    assert_same_summary(
        summary_to_pandas(customer_summary_spark(spark, result.transactions, **kwargs)),
        customer_summary(bundled, **kwargs),
    )


# ----------------------------------------------------------------------------- every reason

MIXED = """order_id,customer_id,date,amount
1,A,1997-01-01,10.00
2,,1997-01-02,5.00
3,B,not-a-date,7.00
4,B,1998-12-31,7.00
5,C,1997-01-03,12,50

6,C,1997-01-03,abc
7,A,1997-01-01,10.00
7,A,1997-01-01,10.00
8,D,19970105,20.00
9,D,1997-01-05T10:30:00+01:00,-5.00
10,E,1997-01-06 08:00:00,1_000
11,E,1997-02-30,1.0
12,F,1997-01-07,inf
"""


def test_each_rejection_reason_matches_duckdb(spark, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED)
    duck = load_transactions(path, as_of="1998-06-30")
    result = load_transactions_spark(spark, path, as_of="1998-06-30", out_dir=tmp_path / "out")
    assert_same_load(duck, result)
    rec = result.reconciliation
    assert rec.rejected_by_reason == {
        "malformed_row": 1,  # 12,50 splits into too many fields
        "missing_customer_id": 1,
        "unparseable_date": 2,  # not-a-date, 1997-02-30
        "date_out_of_range": 0,
        "date_before_earliest": 0,
        "date_after_as_of": 1,
        "non_numeric_amount": 3,  # abc, 1_000 (no thousands separators), inf
        "amount_out_of_range": 0,
        "duplicate_row": 1,
    }
    assert (rec.rows_read, rec.rows_accepted) == (13, 4)
    assert rec.returns.customer_days_netted == 1  # D's -5.00 against D's 20.00 of the same day
    rejected = load_result_to_pandas(result).rejections
    primary = rejected[rejected["primary"]].set_index("source_row")["reason"].to_dict()
    assert primary == {
        2: "missing_customer_id",
        3: "unparseable_date",
        4: "date_after_as_of",
        5: "malformed_row",
        6: "non_numeric_amount",
        8: "duplicate_row",
        11: "non_numeric_amount",
        12: "unparseable_date",
        13: "non_numeric_amount",
    }
    lines = rejected.set_index("source_row")["line"]
    assert (lines[5], lines[6]) == (6, 8)  # the blank line 7 is not a row
    assert result.transactions_path and Path(result.transactions_path).is_dir()
    assert result.transactions.count() == 4  # read back from the Parquet written to out_dir


def test_date_format_matches_duckdb(spark, tmp_path: Path) -> None:
    assert spark_date_pattern("%d/%m/%Y") == "d'/'M'/'yyyy"
    assert spark_date_pattern("%Y%m%d") == "yyyyMMdd"
    path = tmp_path / "dmy.csv"
    path.write_text(
        "customer_id;date;amount\nA;3/1/1997;1\nA;31/12/1997;2\nB;31/02/1997;3\nB;1997-01-03;4\n"
    )
    duck = load_transactions(path, date_format="%d/%m/%Y")
    result = load_transactions_spark(spark, path, date_format="%d/%m/%Y")
    assert duck.reconciliation.rejected_by_reason["unparseable_date"] == 2
    assert_same_load(duck, result)
    result.unpersist()


def test_default_date_rule_is_one_rule_in_both_engines(spark, tmp_path: Path) -> None:
    """ISO dates and timestamps (the date as written), YYYYMMDD and blanks around either are
    read alike; a trailing line separator (which Java's ``$`` would let through), an impossible
    day and a nine-digit number are not dates in either engine."""
    path = tmp_path / "dates.csv"
    rows = [
        "A,1997-01-03,1",
        "A, 19970104 ,2",
        "A,1997-01-05T23:30:00-08:00,3",
        "B,19970106\u2028,4",
        "B,1997-01-07\u2028,5",
        "B,19970230,6",
        "B,199701080,7",
    ]
    path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    duck = load_transactions(path)
    result = load_transactions_spark(spark, path)
    assert_same_load(duck, result)
    assert duck.reconciliation.rejected_by_reason["unparseable_date"] == 4
    days = duck.transactions["date"].dt.strftime("%Y-%m-%d").tolist()
    assert days == ["1997-01-03", "1997-01-04", "1997-01-05"]
    result.unpersist()


# ----------------------------------------------------------------------------- simulated log


def test_simulated_parquet_log_matches_duckdb(spark, tmp_path: Path) -> None:
    path = tmp_path / "sim.parquet"
    write_parquet(
        path,
        BGNBDParams(r=0.8, alpha=4.0, a=0.8, b=2.5),
        400,
        start="2020-01-01",
        acquisition_end="2020-03-31",
        end="2021-06-30",
        spend=GammaGammaParams(p=6.0, q=4.0, gamma=15.0),
        seed=7,
        chunk_size=150,  # several row groups
    )
    duck = load_transactions(path)
    result = load_transactions_spark(spark, path)
    assert duck.reconciliation.rows_read > 1000
    assert_same_load(duck, result)
    kwargs = {"calibration_end": "2020-12-31", "holdout_end": "2021-06-30", "time_unit": "week"}
    want = calibration_holdout(duck.transactions, **kwargs)
    # straight from the simulated file (nanosecond timestamps) and from the validated rows
    assert_same_summary(summary_to_pandas(calibration_holdout_spark(spark, path, **kwargs)), want)
    assert_same_summary(
        summary_to_pandas(calibration_holdout_spark(spark, result.transactions, **kwargs)), want
    )
    result.unpersist()


# ----------------------------------------------------------------------------- errors and config


def test_clear_errors_name_the_file_and_column(spark, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_transactions_spark(spark, tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: empty file \(no header"):
        load_transactions_spark(spark, empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("customer_id,date,amount\n")
    with pytest.raises(DataError, match=r"header\.csv: empty file \(no data rows\)"):
        load_transactions_spark(spark, header_only)
    other = tmp_path / "other.csv"
    other.write_text("customer_id,day,amount\nA,1997-01-01,1\n")
    with pytest.raises(DataError, match=r"other\.csv: required column 'date' \(columns\.date\)"):
        load_transactions_spark(spark, other)
    text = "customer_id,date,amount\nA,1997-01-01,1\n"
    wrong_kinds = {
        "u16.csv": ("\ufeff" + text).encode("utf-16-le"),
        "book.csv": b"PK\x03\x04" + b"\x00" * 20 + b"[Content_Types].xml",
        "mac.csv": text.replace("\n", "\r").encode(),
        "latin1.csv": text.replace("A,", "\u00e9,").encode("latin-1"),
    }
    for file, data in wrong_kinds.items():
        (tmp_path / file).write_bytes(data)
        with pytest.raises(DataError, match=rf"^{re.escape(file)}: .*(UTF-16|Excel|CR-only|not UTF-8)"):
            load_transactions_spark(spark, tmp_path / file)
    frame = spark.createDataFrame([("A", 1.0)], "customer_id string, amount double")
    with pytest.raises(DataError, match=r"missing column\(s\) date"):
        customer_summary_spark(spark, frame, calibration_end=CAL_END)
    gaps = spark.createDataFrame(
        [("A", dt.date(1997, 1, 1), None)], "customer_id string, date date, amount double"
    )
    with pytest.raises(DataError, match=r"1 row\(s\) with a missing"):
        customer_summary_spark(spark, gaps, calibration_end=CAL_END)
    late = gaps.withColumn("amount", F.lit(1.0))
    with pytest.raises(DataError, match=r"no customer made a purchase"):
        summary_to_pandas(customer_summary_spark(spark, late, calibration_end="1996-12-31"))


def test_config_engine_spark_runs_the_same_summaries(spark, tmp_path: Path) -> None:
    base = {"company": {"name": "CDNOW"}, "data": {"source": "cdnow-sample"}}
    base["calibration_end"] = CAL_END
    spark_cfg = parse_config({**base, "engine": {"name": "spark", "spark": {"master": "local[2]"}}})
    assert spark_cfg.engine.name == "spark"
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "engine": {"name": "sparkk"}}, "acme.yaml")
    assert str(err.value).startswith("acme.yaml: engine.name:") and "\n" not in str(err.value)
    duck_cfg = parse_config({**base, "engine": {"memory_limit": "1GB", "threads": 1}})
    settings = SummarySettings(dt.date.fromisoformat(CAL_END), dt.date.fromisoformat(HOLDOUT_END))
    got = {}
    for name, cfg in (("duckdb", duck_cfg), ("spark", spark_cfg)):  # through the report's seam
        log = validate_source("cdnow-sample", tmp_path / name)
        got[name] = CompanyData(log, settings, cfg.engine).summaries()
    assert_same_summary(got["spark"], got["duckdb"])


def test_scoring_on_spark_equals_the_embedded_scorer(spark, cdnow_weekly, tmp_path: Path) -> None:
    """mapInPandas over the distinct keys with the posterior broadcast gives the per-draw totals
    and per-customer means of cbcv.clv.scoring.score_customers."""
    import arviz as az

    from cbcv.clv.scoring import ScoringDraws, score_customers, score_spark
    from cbcv.models import BetaGeoModel, GammaGammaModel

    rng = np.random.default_rng(5)
    models = []
    for cls, centre in ((BetaGeoModel, dict(r=0.243, alpha=4.414, a=0.793, b=2.426)),
                        (GammaGammaModel, dict(p=6.25, q=3.74, gamma=15.44))):
        m = cls()
        m.idata = az.from_dict(posterior={k: (v * np.exp(0.1 * rng.standard_normal(30)))[None, :] for k, v in centre.items()})
        models.append(m)
    draws = ScoringDraws.from_models(*models, margin=0.3, annual_discount_rate=0.1, time_unit="week")
    local = score_customers(None, None, cdnow_weekly, tmp_path / "c.parquet", draws=draws, horizon=26.0)
    summary = spark.createDataFrame(cdnow_weekly[["customer_id", "cohort", "x", "t_x", "T", "mean_repeat_spend"]]).repartition(3)
    remote = score_spark(spark, summary, draws, horizon=26.0)
    np.testing.assert_allclose(remote.total, local.total, rtol=1e-10)
    np.testing.assert_allclose(remote.expected_total, local.expected_total, rtol=1e-10)
    assert remote.n_keys == local.n_keys
    got = remote.customers.toPandas().set_index("customer_id").sort_index()
    want = pd.read_parquet(tmp_path / "c.parquet").set_index("customer_id").sort_index()
    assert len(got) == len(want) == 2357
    for col in ("clv_mean", "p_alive_mean", "expected_mean", "dert_mean", "spend_mean",
                "p_alive_low", "p_alive_high", "expected_low", "expected_high"):
        np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-10, err_msg=col)
    repeat = got[got["x"] > 0]  # BG/NBD: P(alive) < 1 after a repeat purchase, uncertain across draws
    assert (repeat["p_alive_low"] < repeat["p_alive_high"]).all()
    # with fewer interval draws than the posterior's, both engines read the same evenly spaced draws
    thin = score_spark(spark, summary, draws, interval_draws=7).customers.toPandas().set_index("customer_id")
    local7 = score_customers(None, None, cdnow_weekly, tmp_path / "c7.parquet", draws=draws, interval_draws=7)
    want7 = pd.read_parquet(local7.path).set_index("customer_id").loc[thin.index]
    np.testing.assert_allclose(thin["p_alive_low"], want7["p_alive_low"], rtol=1e-10)
    assert not np.allclose(thin["p_alive_low"], got.loc[thin.index, "p_alive_low"])


# ----------------------------------------------------------------------------- hostile input
# One row of each hostile class (ids, dates, amounts, purchase days): the Spark engine applies
# the row rules of cbcv.data.rules exactly as DuckDB does, with the same reasons, order of
# checks, rejection rows and reconciliation.

HOSTILE_ROWS = [
    ("A", "1997-01-01", "10.00"),
    *((token, "1997-01-01", "1") for token in ("NULL", "null", "None", "NaN", "N/A", "\\N", "-")),
    ("\u00a0", "1997-01-01", "1"),  # only a Unicode blank
    ("\u3000B\u00a0", "1997-01-01", "2"),  # trimmed to B
    ("\u200b", "1997-01-01", "1"),
    ("C\x00D", "1997-01-01", "1"),  # an embedded NUL byte
    ("C\x01D", "1997-01-01", "1"),
    ("\ufeffE\u2009", "1997-01-01", "3"),  # trimmed to E
    ("F", "0001-01-01", "1"),
    ("F", "1899-12-30", "1"),
    ("F", "1900-01-01", "1"),
    ("F", "9999-12-31", "1"),
    ("F", "1969-12-31", "1"),
    ("F", "1970-01-01", "1"),
    ("F", "2262-04-12", "1"),
    ("G", "1997-01-02", "1_234.50"),
    ("G", "1997-01-02", "1,234"),
    ("G", "1997-01-02", "1e400"),
    ("G", "1997-01-02", "2e12"),
    ("G", "1997-01-02", "nan"),
    ("G", "1997-01-02", "inf"),
    ("G", "1997-01-02", "-1e12"),
    ("H", "1997-01-03", "10"),  # H's first day nets -40: not a purchase
    ("H", "1997-01-03", "-50"),
    ("H", "1997-01-04", "0"),  # a zero-amount day
    ("H", "1997-01-10", "25"),
    ("I", "1997-01-05", "0"),  # a customer whose only day is zero-priced
    ("J", "1997-01-06", "5"),  # nets to zero because of a return: never a purchase
    ("J", "1997-01-06", "-5"),
    ("NULL", "0001-01-01", "abc"),  # several failing checks: the first is the reason
    ("K", "1899-12-30", "2e12"),
]


def _hostile_csv(path: Path) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["customer_id", "date", "amount"])
        writer.writerows(HOSTILE_ROWS)
    return path


def _hostile_parquet(folder: Path) -> tuple[Path, Path]:
    """Typed columns: float ids (integral, NaN, fractional), zone-aware nanosecond timestamps
    near midnight and double amounts (NaN, infinity, too large); date32 and naive timestamps
    from year 1 to 9999."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    instants = pd.to_datetime(
        ["1997-01-31 23:30:00", "1997-02-01 03:30:00", "1997-02-01 12:00:00.250", "1997-02-02",
         "1997-02-03", "1997-02-04", "1997-02-05 04:59:59"],
        format="ISO8601",
    ).tz_localize("UTC")
    typed = pa.table(
        {
            "customer_id": pa.array([7.0, 7.0, float("nan"), 7.5, -3.0, 8.0, 1e15]),
            "date": pa.array(instants.tz_convert("America/New_York")),
            "amount": pa.array([12.5, 2.0, 1.0, float("nan"), float("inf"), 2e12, 0.1]),
        }
    )
    days = [dt.date(1, 1, 1), dt.date(1899, 12, 30), dt.date(1900, 1, 1), dt.date(1970, 1, 1),
            dt.date(1997, 3, 1), dt.date(9999, 12, 31)]
    extreme = pa.table(
        {
            "customer_id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
            "day": pa.array(days, pa.date32()),
            "ts": pa.array([dt.datetime.combine(d, dt.time(23, 59)) for d in days],
                           pa.timestamp("us")),
            "amount": pa.array(["1", "2", "3", "4", "5", "6"]),
        }
    )
    paths = folder / "typed.parquet", folder / "extreme.parquet"
    pq.write_table(typed, paths[0])
    pq.write_table(extreme, paths[1])
    return paths


def test_hostile_rows_match_duckdb(spark, tmp_path: Path) -> None:
    csv_path = _hostile_csv(tmp_path / "hostile.csv")
    typed, extreme = _hostile_parquet(tmp_path)
    runs = [
        (csv_path, {}),
        (csv_path, {"null_tokens": ["unknown"], "earliest_date": "1900-01-01",
                    "zero_amount_purchases": True, "as_of": "1997-01-05"}),
        (typed, {}),
        (typed, {"timezone": "Asia/Tokyo", "zero_amount_purchases": True}),
        (typed, {"timezone": "UTC", "as_of": "1997-02-01"}),
        (extreme, {"columns": {"date": "day"}}),
        (extreme, {"columns": {"date": "ts"}, "earliest_date": "1899-12-30"}),
    ]
    got = {}
    for path, kwargs in runs:
        duck = load_transactions(path, **kwargs)
        result = load_transactions_spark(spark, path, **kwargs)
        assert_same_load(duck, result)
        got[(path.name, tuple(sorted(kwargs)))] = load_result_to_pandas(result)
        result.unpersist()

    # the rules themselves, as the Spark engine applied them
    default = got[("hostile.csv", ())]
    rec = default.reconciliation
    assert rec.rows_read == len(HOSTILE_ROWS) == rec.rows_accepted + rec.rows_rejected
    by_reason = {k: v for k, v in rec.rejected_by_reason.items() if v}
    assert by_reason == {
        "missing_customer_id": 12,  # 7 tokens, 2 blanks, NUL, U+0001, NULL with bad fields
        "date_out_of_range": 3,  # 0001-01-01, 9999-12-31, 2262-04-12
        "date_before_earliest": 4,  # 1899-12-30 twice, 1900-01-01, 1969-12-31
        "non_numeric_amount": 5,  # 1_234.50, 1,234, 1e400, nan, inf
        "amount_out_of_range": 1,  # 2e12
    }
    assert set(default.transactions["customer_id"]) == {"A", "B", "E", "F", "G", "H", "I", "J"}
    rej = default.rejections
    multi = rej[rej["source_row"].eq(len(HOSTILE_ROWS) - 1)]  # NULL,0001-01-01,abc
    assert multi["reason"].tolist() == [
        "missing_customer_id", "date_out_of_range", "date_before_earliest", "non_numeric_amount"
    ]
    assert multi["primary"].tolist() == [True, False, False, False]
    # purchase rule: H's -40 day, H's and I's zero days, J's netted day and G's -1e12 day
    assert rec.returns.non_positive_days == 5 and not rec.zero_amount_purchases
    custom = got[("hostile.csv", ("as_of", "earliest_date", "null_tokens", "zero_amount_purchases"))]
    assert custom.reconciliation.zero_amount_purchases
    assert custom.reconciliation.returns.non_positive_days == 2  # H's -40 and G's (J: after as_of)
    assert "NULL" in set(custom.transactions["customer_id"])  # not a null token here
    # typed Parquet: integral floats keep their integer text, NaN is missing, dates in the
    # column's own zone (New York) or the configured one (Tokyo)
    own = got[("typed.parquet", ())].transactions
    assert own["customer_id"].tolist()[:2] == ["7", "7"]
    assert own["date"].dt.strftime("%Y-%m-%d").tolist()[:2] == ["1997-01-31", "1997-01-31"]
    tokyo = got[("typed.parquet", ("timezone", "zero_amount_purchases"))].transactions
    assert tokyo["date"].dt.strftime("%Y-%m-%d").tolist()[:2] == ["1997-02-01", "1997-02-01"]
    extreme_rec = got[("extreme.parquet", ("columns",))].reconciliation
    assert extreme_rec.rejected_by_reason["date_out_of_range"] == 2  # year 1 and 9999
    assert extreme_rec.rejected_by_reason["date_before_earliest"] == 2  # 1899, 1900


def test_summaries_apply_the_purchase_rule_as_duckdb(spark) -> None:
    """A day netting -40, a zero-amount day, a zero-only customer and a day netted to zero by a
    return: Spark's summaries count purchases as DuckDB's do, with and without the zero rule."""
    tx = pd.DataFrame(
        {
            "customer_id": ["H", "H", "H", "H", "I", "J", "J", "J", "K"],
            "date": pd.to_datetime(
                ["1997-01-03", "1997-01-03", "1997-01-04", "1997-01-10", "1997-01-05",
                 "1997-01-06", "1997-01-06", "1997-01-20", "1997-01-07"]
            ),
            "amount": [10.0, -50.0, 0.0, 25.0, 0.0, 5.0, -5.0, 8.0, 3.0],
        }
    )
    frame = to_spark_transactions(spark, tx)
    kwargs = {"calibration_end": "1997-01-31", "time_unit": "day"}
    for rule in (False, True):
        want = customer_summary(tx, zero_amount_purchases=rule, **kwargs)
        got = summary_to_pandas(
            customer_summary_spark(spark, frame, zero_amount_purchases=rule, **kwargs)
        )
        assert_same_summary(got, want)
        first = got.set_index("customer_id")["first_purchase"].dt.strftime("%m-%d").to_dict()
        if rule:
            assert first == {"H": "01-04", "I": "01-05", "J": "01-20", "K": "01-07"}
        else:  # H's first purchase is not its -40 day nor its zero day; I never purchased
            assert first == {"H": "01-10", "J": "01-20", "K": "01-07"}
    holdout = {"calibration_end": "1997-01-08", "holdout_end": "1997-01-31", "time_unit": "day"}
    for rule in (False, True):
        assert_same_summary(
            summary_to_pandas(
                calibration_holdout_spark(spark, frame, zero_amount_purchases=rule, **holdout)
            ),
            calibration_holdout(tx, zero_amount_purchases=rule, **holdout),
        )
