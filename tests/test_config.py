"""Company config validation: good configs load; each kind of mistake is one message naming the
file and the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cbcv.config import Distribution, load_config, parse_config
from cbcv.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = {
    "company": {"name": "Acme Retail"},
    "data": {"source": "tx.csv"},
    "calibration_end": "2020-06-30",
}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "acme.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["cdnow.yaml", "cdnow-master.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    loaded = load_config(ROOT / "configs" / name)
    cfg = loaded.config
    assert cfg.calibration_end == dt.date(1997, 9, 30)
    assert cfg.holdout_end == dt.date(1998, 6, 30)
    assert loaded.resolve_source() in {"cdnow", "cdnow-sample"}


def test_minimal_config_defaults_and_relative_source(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "company: {name: Acme Retail}\ndata: {source: tx.csv}\ncalibration_end: 2020-06-30\n",
    )
    loaded = load_config(p)
    assert loaded.config.company.folder == "acme-retail"
    assert loaded.config.time_unit == "week"
    assert loaded.config.data.columns.customer_id == "customer_id"
    assert loaded.resolve_source() == str((tmp_path / "tx.csv").resolve())


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "company: {name: Acme}\ndata: {columns: {amount: spend}}\ncalibration_end: 2020-06-30\n",
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "data.source: field required" in msg
    assert "\n" not in msg


def test_wrong_type_and_unknown_field(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "company: {name: Acme}\ndata: {source: a.csv, colums: {}}\ncalibration_end: not-a-date\n",
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "data.colums: unknown field" in msg
    assert "calibration_end:" in msg


def test_bad_choice_and_date_order() -> None:
    with pytest.raises(ConfigError, match=r"time_unit"):
        parse_config({**MINIMAL, "time_unit": "fortnight"}, "x.yaml")
    with pytest.raises(ConfigError, match=r"holdout_end must be after calibration_end"):
        parse_config({**MINIMAL, "holdout_end": "2020-01-01"}, "x.yaml")


def test_financial_inputs_accept_numbers_or_distributions() -> None:
    cfg = parse_config(
        {
            **MINIMAL,
            "financials": {
                "contribution_margin": 0.3,
                "discount_rate": {"dist": "normal", "mean": 0.1, "sd": 0.01},
                "shares_outstanding": 1e6,
            },
        }
    )
    assert cfg.financials is not None
    assert cfg.financials.contribution_margin == 0.3
    assert isinstance(cfg.financials.discount_rate, Distribution)
    with pytest.raises(ConfigError, match=r"financials.discount_rate.*needs mean, sd"):
        parse_config(
            {
                **MINIMAL,
                "financials": {
                    "contribution_margin": 0.3,
                    "discount_rate": {"dist": "normal", "mean": 0.1},
                    "shares_outstanding": 1,
                },
            },
            "x.yaml",
        )


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p = write(tmp_path, "company: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line"):
        load_config(p)
    p = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(p)


def test_engine_section_defaults_to_duckdb_and_accepts_spark() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.engine.name == "duckdb"
    assert (cfg.engine.memory_limit, cfg.engine.threads) == (None, None)
    assert cfg.engine.spark.master == "local[2]"
    cfg = parse_config(
        {
            **MINIMAL,
            "engine": {
                "name": "spark",
                "memory_limit": "8GB",
                "threads": 2,
                "spark": {
                    "master": "spark://host:7077",
                    "conf": {
                        "spark.executor.memory": "16g",
                        "spark.executor.instances": 20,
                        "spark.dynamicAllocation.enabled": True,
                    },
                },
            },
        }
    )
    assert cfg.engine.name == "spark"
    assert cfg.engine.spark.master == "spark://host:7077"
    assert cfg.engine.spark.conf == {
        "spark.executor.memory": "16g",
        "spark.executor.instances": "20",
        "spark.dynamicAllocation.enabled": "true",
    }


@pytest.mark.parametrize(
    ("engine", "pattern"),
    [
        ({"name": "polars"}, r"^x\.yaml: engine\.name: Input should be 'duckdb' or 'spark'$"),
        ({"memory_limit": "lots"}, r"^x\.yaml: engine\.memory_limit: 'lots' is not a memory size"),
        ({"threads": 0}, r"^x\.yaml: engine\.threads: "),
        (
            {"spark": {"mastr": "yarn"}},
            r"^x\.yaml: engine\.spark\.mastr: unknown field \(did you mean 'master'\? "
            r"expected one of master, conf\)$",
        ),
        (
            {"spark": {"conf": {"spark.jars": ["a"]}}},
            r"^x\.yaml: engine\.spark\.conf\.spark\.jars: ",
        ),
    ],
)
def test_bad_engine_settings_give_one_line(engine: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as e:
        parse_config({**MINIMAL, "engine": engine}, "x.yaml")
    assert "\n" not in str(e.value)


def test_engine_out_of_core_is_refused_as_no_longer_needed() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**MINIMAL, "engine": {"out_of_core": True, "memory_limit": "1GB"}}, "acme.yaml")
    assert str(e.value) == (
        "acme.yaml: engine.out_of_core: no longer needed: every company runs the same path whatever "
        "its size (engine.memory_limit and engine.threads cap it); remove the line"
    )


def test_engine_caps_reach_duckdb_and_summaries(tmp_path: Path) -> None:
    import pandas as pd

    from cbcv.data._sql import scratch_connection
    from cbcv.data.summary import customer_summary
    from cbcv.data.summary_files import write_summaries

    setting = "SELECT current_setting('memory_limit'), current_setting('threads')"
    with scratch_connection(memory_limit="1GB", threads=1) as con:
        limit, threads = con.execute(setting).fetchone()
    assert "MiB" in limit and float(limit.split()[0]) < 1000 and threads == 1
    with pytest.raises(ConfigError, match="memory_limit"), scratch_connection(memory_limit="lots"):
        pass
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "date": pd.to_datetime(["2020-01-01", "2020-01-15", "2020-02-01"]),
            "amount": [1.0, 2.0, 3.0],
        }
    )
    engine = parse_config({**MINIMAL, "engine": {"memory_limit": "1GB", "threads": 1}}).engine
    written = write_summaries(tx, tmp_path / "summary.parquet", calibration_end="2020-06-30",
                              memory_limit=engine.memory_limit, threads=engine.threads)
    pd.testing.assert_frame_equal(pd.read_parquet(written.path), customer_summary(tx, calibration_end="2020-06-30"),
                                  check_dtype=False)


def test_target_accept_for_every_model_or_per_model(tmp_path) -> None:
    import yaml

    from cbcv.config import load_config
    from cbcv.core.errors import ConfigError

    base = yaml.safe_load((ROOT / "configs" / "madrigal.yaml").read_text())
    base["data"]["source"] = str(ROOT / "data" / "raw" / "cust_by_qtr_spend.csv")
    path = tmp_path / "c.yaml"
    for value, expect in ((0.95, {"bgnbd": 0.95, "acquisition": 0.95}),
                          ({"bgnbd": 0.98}, {"bgnbd": 0.98, "pareto_nbd": None, "acquisition": None})):
        base["sampler"]["target_accept"] = value
        path.write_text(yaml.safe_dump(base))
        sampler = load_config(path).config.sampler
        assert {m: sampler.target_accept_for(m) for m in expect} == expect
    for bad in ({"bgnbd": 1.2}, {"bogus": 0.9}, 0.0):
        base["sampler"]["target_accept"] = bad
        path.write_text(yaml.safe_dump(base))
        with pytest.raises(ConfigError, match="target_accept"):
            load_config(path)


SUBSCRIPTION = {
    "company": {"name": "Acme Software"},
    "business": "subscription",
    "data": {"source": "subs.csv", "columns": {"customer_id": "account", "start": "began", "end": "ended",
                                                "price": "mrr"}},
    "calibration_end": "2022-12-31",
}


def test_subscription_config_defaults_and_columns() -> None:
    """Item 7 of the subscription issue: business, the column map, the month time unit and cohort,
    the retention models chosen by the holdout, the subscription notebooks."""
    cfg = parse_config(SUBSCRIPTION)
    assert cfg.is_subscription and cfg.time_unit == "month" and cfg.cohort_period == "month"
    assert cfg.models == ("sbg", "bdw") and cfg.retention.pooling == "auto"
    assert cfg.report.notebooks == ("11_subscription_audit", "12_retention_models",
                                    "13_subscriber_equity_and_valuation")
    assert cfg.data.columns.subscription_columns() == {"customer_id": "account", "start": "began",
                                                        "end": "ended", "price": "mrr"}
    yearly = parse_config({**SUBSCRIPTION, "data": {**SUBSCRIPTION["data"], "billing_period": "year"}})
    assert yearly.time_unit == "year" and yearly.cohort_period == "year"
    # a transaction company keeps its defaults
    plain = parse_config(MINIMAL)
    assert plain.business == "transactions" and plain.models == ("bgnbd", "pareto_nbd", "gamma_gamma")
    assert plain.data.columns.transaction_columns() == {"customer_id": "customer_id", "date": "date",
                                                         "amount": "amount"}


@pytest.mark.parametrize(("change", "pattern"), [
    ({"time_unit": "week"}, r"time_unit: time_unit 'week': a subscription company's time unit is its billing period"),
    ({"models": ["bgnbd"]}, r"models: 'bgnbd' is not a retention model"),
    ({"report": {"notebooks": ["04_company_valuation"]}},
     r"report.notebooks: '04_company_valuation' is not a notebook of business: subscription"),
    ({"data": {"source": "s.csv", "billing_period": "year"}, "time_unit": "month"},
     r"data.billing_period 'year' differs from time_unit 'month'"),
    ({"data": {"source": "s.csv", "layout": "panel_wide"}}, r"data.layout 'panel_wide' is not for business: subscription"),
    ({"retention": {"pooling": "some"}}, r"retention.pooling: Input should be"),
    ({"business": "subscriptions"}, r"business: Input should be 'transactions', 'panel', 'subscription' or 'disclosures'"),
])
def test_subscription_config_mistakes_name_the_field(change: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        parse_config({**SUBSCRIPTION, **change}, "acme.yaml")


@pytest.mark.parametrize(("change", "pattern"), [
    ({"data": {"source": "tx.csv", "columns": {"start": "s"}}}, r"data.columns.start is a subscription field"),
    ({"data": {"source": "tx.csv", "layout": "billing_log"}}, r"data.layout 'billing_log' needs business: subscription"),
    ({"retention": {"pooling": "partial"}}, r"retention: only for business: subscription"),
    ({"time_unit": "year"}, r"a purchase model counts time in day, week, month"),
    ({"report": {"notebooks": ["11_subscription_audit"]}}, r"'11_subscription_audit' is not a notebook of business: transactions"),
])
def test_subscription_fields_are_refused_for_transactions(change: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        parse_config({**MINIMAL, **change}, "acme.yaml")
