"""Issue 17: customer experience worth, every customer's value every month, value by owner.

On the simulated demo company (``configs/cx-demo.yaml``, ``data/raw/cx_demo/``) fitted by MAP
(the CI budget): the report's two pages, the monthly history, the movement of customer equity
(reconciling to the cent, per draw and by owner, its realised value against the log counted
independently with pandas) and the value of moving detractors to promoters (per share against
the bridge's closed form)."""

from __future__ import annotations

import datetime as dt
import filecmp
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from bs4 import BeautifulSoup

from cbcv.config import load_config
from cbcv.core.errors import ConfigError, DataError
from cbcv.data.simulate.experience import write_demo
from cbcv.pipeline.equity_movement import LINES, SIGN, equity_movement, reconciles
from cbcv.pipeline.experience import customer_experience
from cbcv.pipeline.value_history import (
    DONE,
    HISTORY_COLUMNS,
    history_summary,
    partitions,
    score_as_of,
)
from cbcv.pipeline.workflow import load_company
from conftest import ROOT, run_cbcv

DEMO = ROOT / "data" / "raw" / "cx_demo"
START, END = dt.date(2025, 9, 30), dt.date(2025, 12, 31)


def demo_config(folder: Path, slug: str = "cx-demo-test", **changes: object) -> Path:
    """The demo config with absolute paths, a MAP fit and its own work folder."""
    raw = yaml.safe_load((ROOT / "configs" / "cx-demo.yaml").read_text(encoding="utf-8"))
    raw["data"]["source"] = str(DEMO / "transactions.csv")
    raw["survey"]["source"] = str(DEMO / "survey.csv")
    raw["attributes"]["source"] = str(DEMO / "owners.csv")
    raw["sampler"] = {"method": "map"}
    raw["company"]["slug"] = slug
    raw.update(changes)
    path = folder / f"{slug}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("cx")
    config = demo_config(folder, report={"notebooks": ["01_customer_base_audit", "06_customer_experience",
                                                       "07_customer_value_movement"]})
    res = run_cbcv("report", str(config), "--out", str(folder / "reports"))
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = load_config(config)
    return {"config": config, "loaded": loaded, "result": load_company(loaded),
            "run_dir": Path(json.loads(res.stdout)["run_dir"]), "folder": folder}


def test_demo_files_are_the_simulation(tmp_path: Path) -> None:
    written = write_demo(str(tmp_path))
    assert sorted(written) == ["owners.csv", "survey.csv", "transactions.csv"]
    for name in written:
        assert filecmp.cmp(tmp_path / name, DEMO / name, shallow=False), name


def test_config_checks_of_the_customer_management_fields(tmp_path: Path) -> None:
    def error(**changes: object) -> str:
        with pytest.raises(ConfigError) as exc:
            load_config(demo_config(tmp_path, **changes))
        return str(exc.value)

    assert "movement.by: 'channel' is not one of attributes.owners" in error(
        movement={"start": "2025-09-30", "end": "2025-12-31", "by": ["channel"]})
    assert "movement: end must be after start" in error(movement={"start": "2025-09-30", "end": "2025-09-01"})
    msg = error(survey=None)
    assert "survey: required" not in msg  # 06 without a survey: its own line
    assert "06_customer_experience needs survey" in msg and msg.count("report.notebooks:") == 1
    assert "models: 'bgbb' is not fitted with covariates" in error(models=["bgbb"])


def test_history_has_one_complete_partition_per_month(demo: dict) -> None:
    history = demo["result"].accepted.parent / "history"
    parts = partitions(history)
    days = [p.meta["as_of"] for p in parts]
    assert days == ["2025-09-30", "2025-10-31", "2025-11-30", "2025-12-31"]  # written by the report's page
    for part in parts:
        table = pd.read_parquet(part.path / "part-0.parquet")
        assert tuple(table.columns) == HISTORY_COLUMNS
        assert len(table) == part.customers and table["customer_id"].is_unique
        assert table["model_version"].nunique() == 1 and table["model_version"].iloc[0] == part.meta["model_version"]
        assert table["config_hash"].iloc[0] == part.meta["config_hash"]
        for what in ("clv", "p_alive", "expected"):
            assert (table[f"{what}_low"] <= table[f"{what}_mean"] + 1e-9).all(), what
            assert (table[f"{what}_mean"] <= table[f"{what}_high"] + 1e-9).all(), what
        assert table["p_alive_high"].max() <= 1 and table["p_alive_low"].min() >= 0
    # customers acquired by each date, counted independently
    tx = pd.read_csv(DEMO / "transactions.csv", dtype={"customer_id": str}, parse_dates=["date"])
    first = tx.groupby("customer_id")["date"].min()
    assert [p.customers for p in parts] == [int((first <= pd.Timestamp(d)).sum()) for d in days]
    summary = history_summary(history)
    assert list(summary["customers"]) == [p.customers for p in parts]


def test_scoring_a_date_again_replaces_its_partition_with_the_same_rows(demo: dict) -> None:
    history = demo["result"].accepted.parent / "history"
    day = dt.date(2025, 10, 31)
    before = pd.read_parquet(history / f"as_of={day}" / "part-0.parquet")
    part = score_as_of(demo["loaded"], demo["result"], day, history)
    after = pd.read_parquet(part.path / "part-0.parquet")
    pd.testing.assert_frame_equal(before, after)
    assert len(list(history.glob(f"*as_of={day}*"))) == 1  # no second partition, no leftover staging
    (history / "as_of=2025-01-31").mkdir()  # a partition that never finished
    try:
        with pytest.raises(DataError, match=f"incomplete history partition \\(no {DONE}\\)"):
            partitions(history)
    finally:
        (history / "as_of=2025-01-31").rmdir()


def test_the_covariate_summaries_are_written_once_for_every_page(demo: dict) -> None:
    path = load_company(demo["loaded"]).covariate_summary_file  # another page's data object
    stamp, manifest, before = path.stat().st_mtime_ns, path.with_suffix(".json"), pd.read_parquet(path)
    assert load_company(demo["loaded"]).covariate_summary_file.stat().st_mtime_ns == stamp  # reused
    saved = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**saved, "key": "other covariates"}), encoding="utf-8")
    rebuilt = load_company(demo["loaded"]).covariate_summary_file
    assert rebuilt.stat().st_mtime_ns != stamp and json.loads(manifest.read_text(encoding="utf-8")) == {
        **saved, "files": {path.name: [rebuilt.stat().st_size, rebuilt.stat().st_mtime_ns]}}
    pd.testing.assert_frame_equal(pd.read_parquet(rebuilt), before)


@pytest.fixture(scope="module")
def movement(demo: dict):
    store = demo["result"].accepted.parent / "history" / "_models"
    return equity_movement(demo["loaded"], demo["result"], START, END, store, by=["rep", "region"])


def test_movement_reconciles_to_the_cent_in_every_draw_and_by_owner(movement) -> None:
    table = movement.table()
    assert reconciles(table)
    cents = (table["mean"] * 100).round().astype(np.int64)
    assert cents["closing"] == sum(SIGN[k] * cents[k] for k in SIGN)
    d = movement.draws
    np.testing.assert_allclose(sum(SIGN[k] * d[k] for k in SIGN), d["closing"], rtol=1e-12)
    for column in ("rep", "region"):
        owners = movement.by_owner(column)
        owner_cents = (owners[list(LINES)] * 100).round().astype(np.int64)
        assert (owner_cents.sum() == cents.reindex(LINES)).all(), column  # owners add up to the total
        rows = owner_cents["closing"] == sum(SIGN[k] * owner_cents[k] for k in SIGN)
        assert rows.all(), column  # and each owner's lines reconcile
        np.testing.assert_allclose(owners["value_created"], owners["new_customers"] + owners["retained_behaviour"],
                                   atol=0.006)
        assert (owners["value_created_low"] <= owners["value_created_high"]).all()
    assert set(movement.by_owner("region").index) == {"East", "North", "South", "West"}


def test_movement_counts_and_realised_value_match_the_log(movement, demo: dict) -> None:
    tx = pd.read_csv(DEMO / "transactions.csv", dtype={"customer_id": str}, parse_dates=["date"])
    first = tx.groupby("customer_id")["date"].min()
    new = ((first > pd.Timestamp(START)) & (first <= pd.Timestamp(END))).sum()
    assert movement.counts["new_customers"] == new
    assert movement.counts["customers_start"] == (first <= pd.Timestamp(START)).sum()
    window = tx[(tx["date"] > pd.Timestamp(START)) & (tx["date"] <= pd.Timestamp(END))]["amount"].sum()
    fin = demo["loaded"].config.financials
    from cbcv.valuation.inputs import draw_financials

    margin = draw_financials(fin, movement.counts["n_draws"], seed=demo["loaded"].config.seed).contribution_margin
    np.testing.assert_allclose(movement.draws["value_realised"], margin * window, rtol=1e-9)
    # time: the opening equity grown at each draw's continuous rate over the window
    assert 0 < movement.table().loc["time", "mean"] < 0.05 * movement.table().loc["opening", "mean"]


def test_value_of_moving_detractors_to_promoters(demo: dict) -> None:
    cx = customer_experience(demo["loaded"], demo["result"])
    eff = cx.effects.set_index(["process", "group"])["effect"]
    assert len(eff) == 9
    assert eff["purchase", "promoter"] > 0 > eff["purchase", "detractor"]  # the simulated directions
    assert eff["spend", "promoter"] > 0 > eff["spend", "detractor"]
    by = cx.by_group
    assert by.loc["promoter", "clv_per_customer"] > by.loc["passive", "clv_per_customer"] > by.loc[
        "detractor", "clv_per_customer"]
    assert by["customers"].sum() == demo["result"].n_customers
    assert (cx.uplift_per_detractor > 0).all()
    np.testing.assert_allclose(cx.programme_value, 0.25 * cx.n_detractors * cx.uplift_per_detractor)
    # the bridge's closed form here: no costs, no debt, 25% tax on a positive equity
    fin = demo["loaded"].config.financials
    np.testing.assert_allclose(cx.uplift_per_share, (1 - fin.tax_rate) * cx.uplift_per_detractor
                               / fin.shares_outstanding, rtol=1e-9)
    assert cx.to_json_dict()["caveat"].startswith("The survey effects are associations")


def test_customer_management_pages(demo: dict) -> None:
    run = demo["run_dir"]
    ids = set(pd.read_csv(DEMO / "owners.csv", dtype=str)["customer_id"])
    for page in ("06_customer_experience.html", "07_customer_value_movement.html"):
        body = BeautifulSoup((run / page).read_text(encoding="utf-8"), "html.parser").body
        assert not body.select(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor, .highlight"), page
        text = body.get_text(" ")
        assert re.search(r"[Vv]aluation date:?\s+2025-12-31", text), page
        assert "imulated" in text, page  # labelled as simulated
        assert "Traceback" not in text and "Warning" not in text and "/tmp" not in text, page
        assert len(body.select('img[src^="data:image/png;base64,"]')) >= 2, page
    cx_text = (run / "06_customer_experience.html").read_text(encoding="utf-8")
    assert "associations" in cx_text and "per share" in cx_text
    assert "The lines reconcile to the cent." in (run / "07_customer_value_movement.html").read_text(encoding="utf-8")
    moved = json.loads((run / "movement" / "movement.json").read_text(encoding="utf-8"))
    assert moved["reconciles_to_the_cent"] is True and set(moved["by"]) == {"rep", "region"}
    # no customer id in any file of the run: ids are four digits, so look for those with a
    # leading zero (never a count or a year) anywhere, and for any id as a quoted string
    padded = {i for i in ids if i.startswith("0")}
    for path in run.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".html", ".yaml"):
            content = re.sub(r"base64,[A-Za-z0-9+/=]+", "", path.read_text(encoding="utf-8", errors="replace"))
            found = set(re.findall(r"(?<![\w.,-])\d{4}(?![\w.,-])", content)) & padded
            found |= set(re.findall(r'"(\d{4})"', content)) & ids
            assert not found, (path, sorted(found)[:5])


def test_cli_score_and_movement(demo: dict, tmp_path: Path) -> None:
    history = tmp_path / "history"
    res = run_cbcv("score", str(demo["config"]), "--as-of", "2025-11-30", "--history", str(history))
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["customers"] == partitions(history)[0].customers
    res = run_cbcv("movement", str(demo["config"]), "--from", "2025-10-31", "--to", "2025-11-30", "--by", "region",
                   "--history", str(history), "--out", str(tmp_path / "mv"))
    assert res.returncode == 0, res.stderr[-2000:]
    moved = json.loads((tmp_path / "mv" / "movement.json").read_text(encoding="utf-8"))
    assert moved["reconciles_to_the_cent"] is True and list(moved["by"]) == ["region"]
    assert (tmp_path / "mv" / "movement_by_region.csv").is_file()
    bad = run_cbcv("movement", str(demo["config"]), "--from", "2025-10-31", "--to", "2025-11-30", "--by", "channel",
                   "--history", str(history), "--out", str(tmp_path / "mv2"))
    assert bad.returncode == 1 and "movement by 'channel'" in bad.stderr
    late = run_cbcv("score", str(demo["config"]), "--as-of", "2026-02-28", "--history", str(history))
    assert late.returncode == 1 and "after the data's end 2025-12-31" in late.stderr


@pytest.fixture(scope="module")
def holdout_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo with a holdout period (calibration to 2025-06-30), its fits, validation,
    valuation and backtests pages with the covariates (MAP)."""
    folder = tmp_path_factory.mktemp("cx-holdout")
    config = demo_config(folder, slug="cx-demo-holdout", calibration_end="2025-06-30", holdout_end="2025-12-31",
                         report={"notebooks": ["02_model_fit_and_validation", "04_company_valuation", "05_backtests"]})
    res = run_cbcv("report", str(config), "--out", str(folder / "reports"))
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = load_config(config)
    return {"loaded": loaded, "result": load_company(loaded), "run_dir": Path(json.loads(res.stdout)["run_dir"])}


def _nps_by_customer(day: str) -> pd.Series:
    """Each customer's NPS group from its latest answer on or before ``day``, counted with pandas."""
    survey = pd.read_csv(DEMO / "survey.csv", dtype={"customer_id": str}, parse_dates=["date"])
    latest = survey[survey["date"] <= pd.Timestamp(day)].sort_values("date").groupby("customer_id").last()["score"]
    return pd.cut(latest, [-1, 6, 8, 10], labels=["detractor", "passive", "promoter"]).astype(str)


def test_the_valuation_values_future_customers_at_the_recent_covariate_mix(holdout_report: dict) -> None:
    valuation = json.loads((holdout_report["run_dir"] / "valuation.json").read_text(encoding="utf-8"))
    future = valuation["future_customers"]
    assert future["included"] and "new customers valued at the covariate mix" in future["note"]
    tx = pd.read_csv(DEMO / "transactions.csv", dtype={"customer_id": str}, parse_dates=["date"])
    first = tx.groupby("customer_id")["date"].min()
    recent = first[(first > pd.Timestamp("2024-12-31")) & (first <= pd.Timestamp("2025-12-31"))].index
    groups = _nps_by_customer("2025-12-31").reindex(recent).fillna("not surveyed")
    expected = groups.value_counts(normalize=True)
    got = {row["nps"]: row["share"] for row in future["covariate_mix"]["rows"]}
    assert set(got) == set(expected.index)
    for level, share in got.items():
        assert share == pytest.approx(expected[level], abs=1e-12), level
    assert f"the {len(recent):,} customers acquired from 2025-01-01 to 2025-12-31" in future["covariate_mix"]["basis"]
    assert valuation["existing_customers"]["customers"] == len(first)
    assert valuation["unit_economics"]["CLV of a new customer"]["mean"] > 0
    page = BeautifulSoup((holdout_report["run_dir"] / "04_company_valuation.html").read_text(encoding="utf-8"),
                         "html.parser").body.get_text(" ")
    assert "average of the groups' values over this mix" in page and "Traceback" not in page


def test_holdout_with_and_without_covariates_from_the_config(holdout_report: dict) -> None:
    from cbcv.pipeline.covariate_holdout import covariate_holdout
    from cbcv.pipeline.workflow import fit_company_models

    loaded, result = holdout_report["loaded"], holdout_report["result"]
    fits = fit_company_models(loaded, result)
    compared = covariate_holdout(loaded, result, fits)
    table = compared.table.set_index("model")
    assert list(table.index) == ["bgnbd with covariates", "bgnbd without covariates"]
    by = compared.by_group.set_index("level")
    assert set(by.index) == {"promoter", "passive", "detractor", "not surveyed"}
    # the actual holdout purchases per group, counted with pandas from the log and the survey
    tx = pd.read_csv(DEMO / "transactions.csv", dtype={"customer_id": str}, parse_dates=["date"])
    days = tx.drop_duplicates(["customer_id", "date"])
    first = days.groupby("customer_id")["date"].min()
    known = first[first <= pd.Timestamp("2025-06-30")].index
    groups = _nps_by_customer("2025-06-30").reindex(known).fillna("not surveyed")
    hold = days[(days["date"] > pd.Timestamp("2025-06-30")) & days["customer_id"].isin(known)]
    actual = hold["customer_id"].map(groups).value_counts()
    for level in by.index:
        assert by.loc[level, "actual"] == actual[level], level
    # without the survey group the detractors are over-predicted and the promoters under-predicted;
    # with it the groups' errors are smaller in sum
    assert by.loc["detractor", "error_pct_without"] > 20 and by.loc["promoter", "error_pct_without"] < 0
    assert by["error_pct_with"].abs().sum() < 0.6 * by["error_pct_without"].abs().sum()
    text = BeautifulSoup((holdout_report["run_dir"] / "02_model_fit_and_validation.html").read_text(encoding="utf-8"),
                         "html.parser").body.get_text(" ")
    assert "With and without the customer covariates" in text and "bgnbd without covariates" in text
    for page in ("02_model_fit_and_validation.html", "05_backtests.html"):
        body = BeautifulSoup((holdout_report["run_dir"] / page).read_text(encoding="utf-8"), "html.parser").body
        assert not body.select(".jp-CodeCell .jp-InputArea, .highlight"), page
        assert "Traceback" not in body.get_text(" ") and "Warning" not in body.get_text(" "), page


def test_gamma_gamma_with_covariates_counts_the_customers_it_leaves_out() -> None:
    from cbcv.data.covariates import CovariateTable
    from cbcv.data.simulate.experience import simulate_cx_company
    from cbcv.data.summary import customer_summary
    from cbcv.models import SamplerSettings
    from cbcv.pipeline.workflow import fit_with_covariates

    company = simulate_cx_company(600, seed=3)
    summary = customer_summary(company.transactions, calibration_end="2025-06-30", time_unit="week")
    table = CovariateTable(company.groups.rename("nps").rename_axis("customer_id").reset_index(), "groups", None, 600)
    model, _ = fit_with_covariates(summary, "gamma_gamma", SamplerSettings(method="map"), table, {"nps": "passive"})
    no_repeat = int((summary["x"] == 0).sum())
    assert no_repeat > 0
    assert model.idata.attrs["n_dropped_no_repeat"] == no_repeat
    assert model.idata.attrs["n_customers"] == len(summary) - no_repeat
