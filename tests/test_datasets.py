"""Bundled CDNOW data sets: registry, folder lookup, and the loaded figures against the read-me
that ships with the data and against the raw files read independently with pandas."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from cbcv.core.errors import DataError
from cbcv.data.catalog import DATA_DIR_ENV, DATASETS, dataset_path, is_dataset, raw_data_dir
from cbcv.data.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def read_raw(name: str, fields: list[str]) -> pd.DataFrame:
    """A bundled file read with plain pandas (not cbcv's loader), every field as text."""
    return pd.read_csv(dataset_path(name), sep=r"\s+", header=None, names=fields, dtype=str)


@pytest.fixture(scope="module")
def master():
    return load_dataset("cdnow")


def test_registry() -> None:
    assert set(DATASETS) == {"cdnow", "cdnow-sample"}
    assert is_dataset("cdnow") and is_dataset("CDNOW_sample") and is_dataset(" cdnow-sample ")
    assert not is_dataset("orders.csv") and not is_dataset(Path("cdnow")) and not is_dataset(None)
    assert dataset_path("cdnow") == ROOT / "data" / "raw" / "CDNOW_master.txt"


def test_raw_data_dir_is_the_repositorys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("CBCV_HOME", raising=False)
    assert raw_data_dir() == ROOT / "data" / "raw"


def test_data_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert raw_data_dir() == tmp_path.resolve()
    with pytest.raises(DataError, match=r"CDNOW_sample\.txt: file not found in"):
        dataset_path("cdnow-sample")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(DataError, match=f"{DATA_DIR_ENV}=.*absent: not a folder"):
        raw_data_dir()


def test_unknown_dataset() -> None:
    with pytest.raises(
        DataError, match="unknown data set 'nope'; bundled data sets: cdnow, cdnow-sample"
    ):
        load_dataset("nope")


def test_cdnow_master_matches_its_read_me(master) -> None:
    # read_me_CDNOW_master.txt: 69,659 records of 23,570 customers, January 1997 to June 1998.
    rec = master.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (69659, 69659, 0)
    assert rec.n_customers == 23570
    assert rec.first_date.isoformat() == "1997-01-01" and rec.last_date.isoformat() == "1998-06-30"
    assert rec.source == "CDNOW_master.txt" and rec.source_type == "dataset"
    assert rec.sha256 == hashlib.sha256(dataset_path("cdnow").read_bytes()).hexdigest()
    assert rec.returns.rows == 0


def test_cdnow_master_cohort_first_bought_in_q1_1997(master) -> None:
    first = master.transactions.groupby("customer_id")["date"].min()
    assert first.min() == pd.Timestamp("1997-01-01") and first.max() <= pd.Timestamp("1997-03-31")


def test_cdnow_keeps_ids_and_identical_rows(master) -> None:
    raw = read_raw("cdnow", ["customer_id", "date", "cds", "dollars"])
    tx = master.transactions
    assert tx["customer_id"].iloc[0] == "00001"
    assert tx["customer_id"].tolist() == raw["customer_id"].tolist()
    # the file has identical lines (no order id): all of them are purchases and are kept
    assert raw.duplicated().sum() > 0
    assert tx["amount"].sum() == pytest.approx(raw["dollars"].astype(float).sum(), abs=1e-6)
    assert master.reconciliation.customer_days == len(raw.drop_duplicates(["customer_id", "date"]))


def test_cdnow_sample() -> None:
    result = load_dataset("cdnow-sample")
    rec = result.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (6919, 6919, 0)
    assert rec.n_customers == 2357
    raw = read_raw("cdnow-sample", ["customer_id", "sample_id", "date", "cds", "dollars"])
    assert sorted(raw["sample_id"].astype(int).unique()) == list(range(1, 2358))
    assert result.transactions["customer_id"].iloc[0] == "00004"


def test_cdnow_sample_is_the_masters_records_of_its_customers(master) -> None:
    sample = load_dataset("cdnow-sample").transactions
    in_sample = master.transactions[
        master.transactions["customer_id"].isin(set(sample["customer_id"]))
    ]
    cols = ["customer_id", "date", "amount"]
    left = sample[cols].sort_values(cols).reset_index(drop=True)
    right = in_sample[cols].sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right)


def test_as_of_rejects_later_rows() -> None:
    result = load_dataset("cdnow-sample", as_of="1997-09-30")
    raw = read_raw("cdnow-sample", ["customer_id", "sample_id", "date", "cds", "dollars"])
    later = int((raw["date"] > "19970930").sum())
    rec = result.reconciliation
    assert rec.rejected_by_reason["date_after_as_of"] == later
    assert rec.rows_accepted == 6919 - later
    assert result.transactions["date"].max() <= pd.Timestamp("1997-09-30")
