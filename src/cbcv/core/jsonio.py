"""Strict JSON: the one place cbcv turns Python values into JSON text.

:func:`dumps_strict` writes what any strict parser reads: never ``NaN``, ``Infinity`` or
``-Infinity`` (``allow_nan=False``). Values are made JSON-able first (:func:`to_strict`):

* a non-finite number (Python or NumPy float, ``pd.NA``, ``pd.NaT``, ``None``) becomes ``null``;
* NumPy integers, floats and booleans become Python numbers and booleans; arrays, tuples and sets
  become lists (sets sorted), pandas Series become lists;
* dates, datetimes and timestamps become ISO 8601 strings; paths become strings;
* dataclasses become dicts of their fields; mapping keys become strings;
* anything else is written as its ``str`` (as ``json.dumps(default=str)`` did).

With ``note=True`` a dict in which a non-finite number was replaced gets a ``"non_finite"``
entry: the dotted paths of the values written as ``null`` (for a person reading the file).
Files are written through :func:`cbcv.core.cache.atomic_write_json`, which uses this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

#: The key :func:`dumps_strict` adds (with ``note=True``) listing the values written as null.
NON_FINITE_KEY = "non_finite"


def _loaded(name: str) -> ModuleType | None:
    """``name`` when something has imported it (no value of its types can exist otherwise):
    keeps ``import cbcv.core.jsonio`` light for the CLI."""
    return sys.modules.get(name)


def _is_missing(value: Any) -> bool:
    """``pd.NA``, ``pd.NaT``, NaN, ±inf (Python or NumPy)."""
    pd, np = _loaded("pandas"), _loaded("numpy")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return True
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        return not math.isfinite(float(value))
    return False


def _numpy_scalar(value: Any) -> Any:
    """A NumPy scalar as its Python value (``value`` itself when it is none)."""
    np = _loaded("numpy")
    if np is None:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)  # ISO 8601 at the value's own precision
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _numpy_scalar(value.item())
    return value


def _scalar(value: Any) -> Any:
    """A JSON scalar for a non-container ``value`` (see the module docstring)."""
    value = _numpy_scalar(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return _scalar(value.value)
    if isinstance(value, dt.date | dt.time):  # datetime and pd.Timestamp are dates too
        return value.isoformat()
    return str(value)  # paths, timedeltas and anything else


def _children(value: Any) -> Mapping[Any, Any] | list[Any] | None:
    """``value``'s items when it is a container (a mapping, or a list of values), else None."""
    np, pd = _loaded("numpy"), _loaded("pandas")
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if np is not None and isinstance(value, np.ndarray):
        return list(value) if value.ndim else None
    if pd is not None and isinstance(value, pd.Series | pd.Index):
        return list(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, list | tuple):
        return list(value)
    return None


def to_strict(value: Any, replaced: list[str] | None = None, path: str = "") -> Any:
    """``value`` as plain JSON-able Python with every non-finite number as None; the dotted
    path of each replaced value is appended to ``replaced`` when given."""
    value = _numpy_scalar(value)
    if _is_missing(value):
        if replaced is not None and isinstance(value, float):  # not pd.NA / pd.NaT: missing by design
            replaced.append(path or "$")
        return None
    items = _children(value)
    if items is None:
        return _scalar(value)
    if isinstance(items, Mapping):
        return {str(_scalar(k)): to_strict(v, replaced, f"{path}.{k}" if path else str(k)) for k, v in items.items()}
    return [to_strict(v, replaced, f"{path}[{i}]") for i, v in enumerate(items)]


def dumps_strict(value: Any, *, indent: int | None = 2, sort_keys: bool = False, note: bool = False) -> str:
    """``value`` as strict JSON text (see the module docstring). With ``note`` and a dict
    ``value``, the paths of non-finite numbers written as null go under :data:`NON_FINITE_KEY`."""
    replaced: list[str] = []
    clean = to_strict(value, replaced)
    if note and replaced and isinstance(clean, dict):
        clean[NON_FINITE_KEY] = replaced
    return json.dumps(clean, indent=indent, sort_keys=sort_keys, allow_nan=False)
