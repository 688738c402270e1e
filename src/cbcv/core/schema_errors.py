"""Validation errors of a config schema (pydantic) as the one-line messages cbcv prints:
``field.path: what is wrong (what was expected)``, with a "did you mean" for an unknown field,
rates written as percentages caught, and booleans given where numbers belong
(:func:`bool_numbers`, which pydantic would read as 1 or 0). Used by :func:`cbcv.config.parse_config`;
written against any root model (the engine fields retired from the config excepted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from cbcv.core.config_checks import BOUND_OPERATORS, did_you_mean, is_number, number_text


def field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(
        str(p) for p in loc if not str(p).startswith(("function-", "float", "Distribution"))
    )


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``Financials | None``, ``Quantity``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def fields_at(loc: tuple[Any, ...], root: type[BaseModel], tagged: Mapping[str, type[BaseModel]]) -> list[str]:
    """The field names of the model that holds the last element of ``loc`` (from ``root``;
    ``tagged``: the models a location names by their class, e.g. a union branch)."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if model is None or str(part).startswith(("function-", "float")):
            continue
        if str(part) in tagged:
            model = tagged[str(part)]
            continue
        info = model.model_fields.get(str(part))
        model = None if info is None else model_in(info.annotation)
    return list(model.model_fields) if model is not None else []


def bool_numbers(raw: Any, model: type[BaseModel], prefix: str = "") -> list[str]:
    """Fields given ``true``/``yes``/``no`` where a number is expected (pydantic reads 1/0)."""
    out: list[str] = []
    if not isinstance(raw, dict):
        return out
    for name, info in model.model_fields.items():
        value, text = raw.get(name), str(info.annotation)
        if isinstance(value, bool) and ("float" in text or "int" in text) and "bool" not in text:
            out.append(f"{prefix}{name}: {str(value).lower()} is not a number")
        elif (inner := model_in(info.annotation)) is not None:
            out.extend(bool_numbers(value, inner, f"{prefix}{name}."))
    return out


def _message(err: Any, where: str, root: type[BaseModel], tagged: Mapping[str, type[BaseModel]]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    given = err.get("input")
    if err["type"] == "float_parsing" and isinstance(given, str) and given.strip().endswith("%"):
        number = given.strip().rstrip("%").strip()
        hint = f"write {float(number) / 100:g} for {given.strip()}" if is_number(number) else "write a fraction"
        return f"{given!r} is not a number (rates are fractions: {hint})"
    if err["type"] == "missing":
        return "field required"
    if err["type"] == "extra_forbidden":
        choices = fields_at(tuple(err["loc"]), root, tagged)
        hint = did_you_mean(str(err["loc"][-1]), choices)
        return f"unknown field ({hint}expected one of {', '.join(choices)})" if choices else "unknown field"
    if err["type"] in BOUND_OPERATORS and isinstance(given, int | float):
        op, key = BOUND_OPERATORS[err["type"]]
        hint = ""
        if where.endswith(("_rate", "_growth", "target_accept")) and 1 < abs(given) <= 100:
            hint = f"; rates are fractions: write {given / 100:g} for {given:g}%"
        return f"{number_text(given)} is out of range (expected x {op} {number_text(err['ctx'][key])}{hint})"
    if err["type"] == "finite_number":
        return f"{given!r} is not a finite number (expected a number, not .inf or .nan)"
    return msg.removeprefix(f"{where}: ")  # a whole-config check that names its field is not told twice


def schema_errors(exc: ValidationError, root: type[BaseModel], tagged: Mapping[str, type[BaseModel]]) -> list[str]:
    """One ``field.path: what is wrong`` line per field of a failed validation of ``root``. A
    number-or-distribution field fails both branches: the distribution's complaint is reported
    when a mapping was given, the number's otherwise."""
    errors = [e for e in exc.errors() if not _other_branch(e)]
    msgs = []
    seen: set[str] = set()
    for err in errors:
        where = field_path(tuple(err["loc"])) or _named_field(err, root) or "(top level)"
        if where in seen:
            continue
        seen.add(where)
        msgs.append(f"{where}: {_message(err, where, root, tagged)}")
    return msgs


def _named_field(err: Any, root: type[BaseModel]) -> str | None:
    """The top-level field a whole-config check names first (``holdout_end must be ...``)."""
    first = str(err["msg"]).removeprefix("Value error, ").split(" ", 1)[0].rstrip(":")
    return first if first.split(".")[0] in root.model_fields else None


def _other_branch(err: Any) -> bool:
    """Whether an error is the number-or-distribution branch that the input was not meant for."""
    loc = tuple(err["loc"])
    if "float" in loc:
        return isinstance(err.get("input"), dict)
    return "Distribution" in loc and err["type"] == "model_type"


#: Engine fields that no longer exist, with the one line a config that still sets one gets.
RETIRED_ENGINE_FIELDS = {
    "out_of_core": "no longer needed: every company runs the same path whatever its size "
                   "(engine.memory_limit and engine.threads cap it); remove the line",
}


def retired_fields(raw: dict[str, Any]) -> list[str]:
    """A line for each retired field a config still sets."""
    engine = raw.get("engine")
    if not isinstance(engine, dict):
        return []
    return [f"engine.{k}: {why}" for k, why in RETIRED_ENGINE_FIELDS.items() if k in engine]
