"""Every likelihood and prediction cites its paper and names the test that pins it, and every
test a docstring of ``cbcv.models`` or ``cbcv.predict`` names exists."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import cbcv
from cbcv import predict as P
from cbcv.models import MODELS
from cbcv.models.acquisition import AcquisitionModel
from cbcv.models.disclosures import DisclosureModel
from cbcv.predict import bgbb, contractual, spend, transactional

SRC = Path(cbcv.__file__).resolve().parent
ROOT = SRC.parents[1]
#: ``tests/test_x.py::test_name`` (the name optional), as the docstrings write it.
TEST_REF = re.compile(r"tests/(test_[A-Za-z0-9_]+\.py)(?:::([A-Za-z_][A-Za-z0-9_]*))?")
#: A citation: an author-year reference (a year between 1950 and 2029).
YEAR = re.compile(r"\b(19[5-9]\d|20[0-2]\d)\b")
#: Public functions of the prediction modules that predict nothing (engine, lookups, units).
NOT_PREDICTIONS = {
    "chunked", "distinct_rows", "posterior_draws", "run", "summarise", "frequency_family",
    "frequency_name", "per_period_rate", "contractual_family", "contractual_draws",
}


def _docstrings() -> list[tuple[str, str]]:
    """(where, docstring) of every module, class and function under cbcv/models and cbcv/predict."""
    out = []
    for package in ("models", "predict"):
        for path in sorted((SRC / package).glob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    doc = ast.get_docstring(node)
                    if doc:
                        out.append((f"{path.relative_to(SRC)}:{getattr(node, 'name', '<module>')}", doc))
    return out


def _test_names(file: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / file).read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _refs(doc: str) -> list[tuple[str, str | None]]:
    return TEST_REF.findall(" ".join(doc.split()))  # a reference may be wrapped over lines


def test_every_named_test_exists() -> None:
    named = 0
    for where, doc in _docstrings():
        for file, name in _refs(doc):
            assert (ROOT / "tests" / file).is_file(), f"{where} names missing tests/{file}"
            if name:
                named += 1
                assert name in _test_names(file), f"{where} names missing tests/{file}::{name}"
    assert named >= 30  # the likelihoods and predictions below, at least


@pytest.mark.parametrize("cls", [*MODELS.values(), AcquisitionModel, DisclosureModel], ids=lambda c: c.name)
def test_every_likelihood_cites_its_paper_and_a_test(cls) -> None:
    method = cls.build_model if cls in (AcquisitionModel, DisclosureModel) else cls.logp
    doc = inspect.getdoc(method) or ""
    assert YEAR.search(doc), f"{cls.name}: the likelihood's docstring cites no paper"
    assert any(name for _, name in _refs(doc)), f"{cls.name}: the likelihood's docstring names no test"


def _predictions() -> list[tuple[str, object]]:
    out = []
    for module in (transactional, spend, bgbb, contractual):
        for name, fn in vars(module).items():
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_") \
                    and name not in NOT_PREDICTIONS:
                out.append((f"{module.__name__}.{name}", fn))
    for family in dict.fromkeys(transactional.FAMILIES.values()):  # ordered: xdist workers must agree
        for name in ("alive", "given_alive", "population", "dert_given_alive"):
            out.append((f"{type(family).__name__}.{name}", getattr(type(family), name)))
    return out


@pytest.mark.parametrize("where, fn", _predictions(), ids=[w for w, _ in _predictions()])
def test_every_prediction_cites_its_paper_and_a_test(where, fn) -> None:
    doc = inspect.getdoc(fn) or ""
    assert any(name for _, name in _refs(doc)), f"{where}: the docstring names no test"
    module_doc = inspect.getdoc(inspect.getmodule(fn)) or ""  # the module's references apply
    assert YEAR.search(doc) or YEAR.search(module_doc), f"{where}: no paper cited"


def test_the_public_predictions_are_all_checked() -> None:
    checked = {where.rsplit(".", 1)[-1] for where, _ in _predictions()}
    public = {n for n in P.__all__ if inspect.isfunction(getattr(P, n))} - NOT_PREDICTIONS
    assert public <= checked
