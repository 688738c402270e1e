"""Predictions are looked up by model class, never by if-chains over model names."""

from __future__ import annotations

import ast
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import cbcv.predict
from cbcv import predict as P
from cbcv.core.errors import CbcvError
from cbcv.models import MODELS, BetaGeoModel, GammaGammaModel, ShiftedBetaGeoModel
from cbcv.predict import contractual as C
from cbcv.valuation.drivers import DrawSet

PREDICT = Path(cbcv.predict.__file__).resolve().parent
BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)  # Fader, Hardie & Lee (2005a), CDNOW


def test_no_comparison_with_a_model_name_in_predict() -> None:
    names = set(MODELS)
    found = []
    for path in sorted(PREDICT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in (node.left, *node.comparators) if isinstance(c, ast.Constant)]
                tuples = [e.value for c in node.comparators if isinstance(c, ast.Tuple | ast.List | ast.Set)
                          for e in c.elts if isinstance(e, ast.Constant)]
                if names & {*consts, *tuples}:
                    found.append(f"{path.name}:{node.lineno}")
    assert not found


def _fixed(cls, **values):
    model = cls()
    model.idata = az.from_dict(posterior={k: np.array([[v]]) for k, v in values.items()})
    return model


def test_a_subclass_inherits_its_familys_predictions() -> None:
    class MyBetaGeo(BetaGeoModel):
        """A user's variant (new priors, say): the BG/NBD's predictions apply unchanged."""

    data = pd.DataFrame({"x": [2], "t_x": [30.43], "T": [38.86]})
    mine, base = _fixed(MyBetaGeo, **BG), _fixed(BetaGeoModel, **BG)
    assert P.frequency_family(MyBetaGeo) is P.FAMILIES[BetaGeoModel]
    np.testing.assert_array_equal(P.expected_purchases(mine, 39.0, data), P.expected_purchases(base, 39.0, data))
    # the family is found by class, by name and from a stand-in with a name alike
    assert P.frequency_family("bgnbd") is P.frequency_family(DrawSet("bgnbd", {})) is P.frequency_family(base)
    assert P.FREQUENCY == ("bgnbd", "mbgnbd", "pareto_nbd")


def test_models_without_the_prediction_say_so() -> None:
    gg = _fixed(GammaGammaModel, p=6.25, q=3.74, gamma=15.44)
    with pytest.raises(CbcvError, match="does not predict purchase frequency"):
        P.p_alive(gg, pd.DataFrame({"x": [1], "t_x": [1.0], "T": [2.0]}))
    with pytest.raises(CbcvError, match="does not predict spend"):
        P.expected_spend(_fixed(BetaGeoModel, **BG), pd.DataFrame({"x": [1], "mean_repeat_spend": [1.0]}))
    with pytest.raises(CbcvError, match="not a contractual model"):
        C.derl(gg, 0.1, 1)
    assert C.contractual_family(ShiftedBetaGeoModel).closed_derl
    assert not C.contractual_family("bdw").closed_derl
