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
from datetime import date, datetime

import pandas as pd

from cbcv.core.errors import DataError
from cbcv.data.catalog import (
    DATASETS,
    dataset_path,
    is_dataset,
    normalise_name,
)
from cbcv.data.load import LoadResult, file_sha256, load_transactions


def read_dataset_frame(name: str) -> pd.DataFrame:
    """The raw records of a bundled data set as text columns named by :attr:`Dataset.fields`."""
    path = dataset_path(name)
    spec = DATASETS[normalise_name(name)]
    try:
        frame = pd.read_csv(
            path, sep=r"\s+", header=None, names=list(spec.fields), dtype=str, engine="c"
        )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{spec.filename}: cannot parse ({exc})") from exc
    return frame


def zero_amount_purchases(name: str) -> bool:
    """The purchase rule the literature applies to the bundled data set ``name``."""
    return DATASETS[normalise_name(name)].zero_amount_purchases


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
    spec = DATASETS[normalise_name(name)]
    frame = read_dataset_frame(name)
    result = load_transactions(
        frame, as_of=as_of, source_name=spec.filename, reject_duplicates=False,
        zero_amount_purchases=spec.zero_amount_purchases,
    )
    reconciliation = dataclasses.replace(
        result.reconciliation, source_type="dataset", sha256=file_sha256(path, spec.filename)
    )
    return dataclasses.replace(result, reconciliation=reconciliation)
