"""The scored customer base kept between notebooks, without pickle.

:meth:`cbcv.pipeline.company_data.CompanyData.score` keeps the :class:`~cbcv.clv.scoring.ScoredBase` of a
scoring so that notebook 04 does not score the base again after notebook 03. It used to be a
pickle (``scored.pkl``), which runs code when loaded. Here it is one ``.npz`` file of plain
arrays, read with ``allow_pickle=False``, and a JSON header (inside it) with the key that the
cache is valid for; labels that are not numbers, strings or dates are kept as strings.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv.clv.scoring import ScoredBase
from cbcv.core.cache import temporary_path
from cbcv.core.jsonio import dumps_strict

FORMAT = "cbcv-scored-1"


def _labels(index: pd.Index) -> np.ndarray:
    values = np.asarray(index)
    return values if values.dtype != object else np.asarray([str(v) for v in index])


def _frame_arrays(prefix: str, frame: pd.DataFrame | pd.Series) -> dict[str, np.ndarray]:
    labels = frame.columns if isinstance(frame, pd.DataFrame) else frame.index
    return {f"{prefix}values": frame.to_numpy(dtype=float), f"{prefix}labels": _labels(labels)}


def save_scored(path: str | Path, key: str, scored: ScoredBase) -> Path:
    """Write ``scored`` with its cache ``key`` to ``path`` (``.npz``) atomically."""
    names = list(scored.group_draws)
    header = {
        "format": FORMAT, "key": key, "path": str(scored.path), "n_customers": scored.n_customers,
        "n_keys": scored.n_keys, "n_pairs": scored.n_pairs, "interval": scored.interval, "meta": scored.meta,
        "groups": [[g, scored.group_draws[g].columns.name, scored.group_counts[g].index.name] for g in names],
        "top_share": [str(c) for c in scored.top_share_draws.columns],
        "expected": scored.expected_total is not None,
    }
    arrays: dict[str, np.ndarray] = {
        "header": np.asarray(dumps_strict(header, indent=None)),
        "total": np.asarray(scored.total, dtype=float),
        "p_alive_counts": np.asarray(scored.p_alive_counts, dtype=float),
        "p_alive_by_mean": np.asarray(scored.p_alive_by_mean, dtype=float),
        "top_share": scored.top_share_draws.to_numpy(dtype=float),
    }
    if scored.expected_total is not None:
        arrays["expected_total"] = np.asarray(scored.expected_total, dtype=float)
    for i, g in enumerate(names):
        arrays |= _frame_arrays(f"g{i}_", scored.group_draws[g]) | _frame_arrays(f"c{i}_", scored.group_counts[g])
    path = Path(path)
    with temporary_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_scored(path: str | Path, key: str) -> ScoredBase | None:
    """The scored base saved at ``path`` when it was saved with ``key``; None when the file is
    missing, unreadable, of another key, or its per-customer file is gone."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header: dict[str, Any] = json.loads(str(arrays["header"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if header.get("format") != FORMAT or header.get("key") != key or not Path(header["path"]).is_file():
        return None
    return _scored(header, arrays)


def _scored(header: dict[str, Any], a: dict[str, np.ndarray]) -> ScoredBase:
    group_draws, group_counts = {}, {}
    for i, (g, col_name, idx_name) in enumerate(header["groups"]):
        group_draws[g] = pd.DataFrame(a[f"g{i}_values"], columns=pd.Index(a[f"g{i}_labels"], name=col_name))
        group_counts[g] = pd.Series(a[f"c{i}_values"], index=pd.Index(a[f"c{i}_labels"], name=idx_name))
    return ScoredBase(
        path=Path(header["path"]), n_customers=int(header["n_customers"]), n_keys=int(header["n_keys"]),
        n_pairs=int(header["n_pairs"]), total=a["total"],
        expected_total=a["expected_total"] if header["expected"] else None,
        group_draws=group_draws, group_counts=group_counts,
        top_share_draws=pd.DataFrame(a["top_share"], columns=header["top_share"]),
        p_alive_counts=a["p_alive_counts"], p_alive_by_mean=a["p_alive_by_mean"],
        interval=float(header["interval"]), meta=header["meta"],
    )
