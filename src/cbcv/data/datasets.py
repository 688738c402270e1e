"""Bundled transaction data sets (CDNOW), loaded through the same validation as any user file.

The raw files live in ``data/raw`` of the repository (see ``data/README.md`` for their origin).
cbcv is installed editable from its clone, so the folder is found by walking up from this file;
``$CBCV_DATA_DIR`` (the ``raw`` folder itself) or ``$CBCV_HOME`` (the clone) point elsewhere.

The CDNOW files are whitespace separated without a header, which the CSV reader does not take,
so they are parsed here with pandas, every field kept as text (customer ids such as ``00004``
keep their leading zeros), and handed to :func:`cbcv.data.load.load_transactions` as a DataFrame.
They have no order id: two identical rows are two purchases (e.g. the same CD bought twice on
one day), so the duplicate check is off for them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from cbcv.data.load import LoadResult, file_sha256, load_transactions
from cbcv.errors import DataError

DATA_DIR_ENV = "CBCV_DATA_DIR"


@dataclass(frozen=True)
class Dataset:
    """A bundled transaction log: its file in ``data/raw`` and the fields of each record.

    ``zero_amount_purchases``: whether the literature on this data set counts zero-priced
    purchase days as purchases (CDNOW's published 2,357 customers include 8 whose only
    purchases cost $0; :mod:`cbcv.data.transactions`).
    """

    name: str
    filename: str
    fields: tuple[str, ...]
    description: str
    citation: str
    zero_amount_purchases: bool = True


_CITATION = (
    "Fader, P. S. and Hardie, B. G. S. (2001), Forecasting Repeat Sales at CDNOW: A Case Study, "
    "Interfaces 31(3), Part 2, S94-S107"
)

#: Bundled transaction data sets by name.
DATASETS: Mapping[str, Dataset] = MappingProxyType(
    {
        "cdnow": Dataset(
            name="cdnow",
            filename="CDNOW_master.txt",
            fields=("customer_id", "date", "cds", "amount"),
            description=(
                "All 69,659 purchases to the end of June 1998 of the 23,570 customers who first "
                "bought at CDNOW in the first quarter of 1997"
            ),
            citation=_CITATION,
        ),
        "cdnow-sample": Dataset(
            name="cdnow-sample",
            filename="CDNOW_sample.txt",
            fields=("customer_id", "sample_id", "date", "cds", "amount"),
            description=(
                "The 1/10th systematic sample of CDNOW customers (2,357 customers, 6,919 "
                "purchases) used by Fader, Hardie & Lee (2005) and later papers"
            ),
            citation=_CITATION,
        ),
    }
)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def is_dataset(name: object) -> bool:
    """True when ``name`` (a string, not a path object) names a bundled data set."""
    return isinstance(name, str) and _normalise(name) in DATASETS


def raw_data_dir() -> Path:
    """The folder holding the bundled raw files (``data/raw`` of the clone).

    ``$CBCV_DATA_DIR`` names the folder directly; ``$CBCV_HOME`` names the clone. Otherwise the
    folders above this file are searched for ``pyproject.toml`` beside ``data/raw``.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise DataError(f"{DATA_DIR_ENV}={env}: not a folder")
        return folder.resolve()
    home = os.environ.get("CBCV_HOME")
    if home:
        folder = Path(home).expanduser() / "data" / "raw"
        if folder.is_dir():
            return folder.resolve()
    for parent in Path(__file__).resolve().parents:
        folder = parent / "data" / "raw"
        if (parent / "pyproject.toml").is_file() and folder.is_dir():
            return folder
    raise DataError(
        "cannot find the bundled data folder data/raw; install cbcv editable from its clone or "
        f"set {DATA_DIR_ENV} to the folder holding CDNOW_master.txt"
    )


def dataset_path(name: str) -> Path:
    """The raw file of the bundled data set ``name`` (DataError if unknown or missing)."""
    if not is_dataset(name):
        raise DataError(f"unknown data set {name!r}; bundled data sets: {', '.join(DATASETS)}")
    spec = DATASETS[_normalise(name)]
    path = raw_data_dir() / spec.filename
    if not path.is_file():
        raise DataError(f"{spec.filename}: file not found in {path.parent}")
    return path


def read_dataset_frame(name: str) -> pd.DataFrame:
    """The raw records of a bundled data set as text columns named by :attr:`Dataset.fields`."""
    path = dataset_path(name)
    spec = DATASETS[_normalise(name)]
    try:
        frame = pd.read_csv(
            path, sep=r"\s+", header=None, names=list(spec.fields), dtype=str, engine="c"
        )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{spec.filename}: cannot parse ({exc})") from exc
    return frame


def zero_amount_purchases(name: str) -> bool:
    """The purchase rule the literature applies to the bundled data set ``name``."""
    return DATASETS[_normalise(name)].zero_amount_purchases


def purchase_rule(source: str, setting: bool | None = None) -> bool:
    """Whether zero-priced purchase days count as purchases for ``source``: ``setting`` when
    given (a config's ``data.zero_amount_purchases``), else the literature's rule for a bundled
    data set, else False (a purchase has a positive net amount)."""
    if setting is not None:
        return bool(setting)
    return is_dataset(source) and zero_amount_purchases(source)


def load_dataset(
    name: str, *, as_of: str | date | datetime | pd.Timestamp | None = None
) -> LoadResult:
    """Load a bundled data set (``cdnow`` or ``cdnow-sample``) with the usual validation.

    The customer id is the CDNOW master id as the file writes it (``00004``); for the sample the
    sample id (1..2,357) is ignored. The reconciliation names the raw file and its sha256.
    """
    path = dataset_path(name)
    spec = DATASETS[_normalise(name)]
    frame = read_dataset_frame(name)
    result = load_transactions(
        frame, as_of=as_of, source_name=spec.filename, reject_duplicates=False,
        zero_amount_purchases=spec.zero_amount_purchases,
    )
    reconciliation = dataclasses.replace(
        result.reconciliation, source_type="dataset", sha256=file_sha256(path, spec.filename)
    )
    return dataclasses.replace(result, reconciliation=reconciliation)
