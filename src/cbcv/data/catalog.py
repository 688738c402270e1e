"""The catalog of bundled transaction data sets: their names, files, fields and citations, and
where their raw files are (``data/raw`` of the clone, ``$CBCV_DATA_DIR`` or ``$CBCV_HOME``).
Reading them is :mod:`cbcv.data.datasets`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cbcv.core.errors import DataError

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


def normalise_name(name: str) -> str:
    """A data set name as the catalog keys it: trimmed, lower case, ``_`` read as ``-``."""
    return name.strip().lower().replace("_", "-")


def is_dataset(name: object) -> bool:
    """True when ``name`` (a string, not a path object) names a bundled data set."""
    return isinstance(name, str) and normalise_name(name) in DATASETS


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
    spec = DATASETS[normalise_name(name)]
    path = raw_data_dir() / spec.filename
    if not path.is_file():
        raise DataError(f"{spec.filename}: file not found in {path.parent}")
    return path
