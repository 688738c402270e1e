"""The compiled BG/NBD and MBG/NBD likelihoods used by fits, against the pointwise PyTensor
reference (values, gradients), in both PyTensor backends, and as the fit's total."""

from __future__ import annotations

import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors

from cbcv.data.simulate import BGNBDParams, simulate_summaries
from cbcv.models.bgnbd import BetaGeoModel, ModifiedBetaGeoModel, bgnbd_logp, mbgnbd_logp
from cbcv.models.bgnbd_kernel import loglike_data
from cbcv.models.compiled import compiled_total
from conftest import assert_numba_backend_agrees, assert_same_likelihood

PARAMS = ("r", "alpha", "a", "b")
POINTS = [(0.243, 4.414, 0.793, 2.426), (1.5, 20.0, 0.1, 8.0), (0.05, 0.3, 3.0, 0.7)]


@pytest.fixture(scope="module")
def arrays(cdnow_weekly):
    return BetaGeoModel().prepare(cdnow_weekly)[0]


@pytest.mark.parametrize(("name", "reference"), [("bgnbd", bgnbd_logp), ("mbgnbd", mbgnbd_logp)])
@pytest.mark.parametrize("point", POINTS)
def test_kernel_equals_the_pointwise_reference_on_cdnow(arrays, name, reference, point):
    sym = {k: pt.dscalar(k) for k in PARAMS}
    fit_total = compiled_total(name, tuple(sym.values()), loglike_data(arrays))
    assert_same_likelihood(fit_total, reference, sym, arrays, point, grad_atol=1e-6)


def test_numba_backend_gives_the_same_numbers(arrays):
    sym = [pt.dscalar(k) for k in PARAMS]
    total = compiled_total("bgnbd", tuple(sym), loglike_data(arrays))
    assert_numba_backend_agrees(total, sym, POINTS[0])


@pytest.mark.parametrize("cls", [BetaGeoModel, ModifiedBetaGeoModel])
def test_models_fit_through_the_compiled_total(cls):
    data = simulate_summaries(BGNBDParams(r=0.6, alpha=5.0, a=0.7, b=3.0), 3000, 40.0, seed=3)
    model = cls()
    arrays = model.prepare(data)[0]
    sym = {k: pt.dscalar(k) for k in PARAMS}
    total = model.total_logp(sym, arrays)
    ops = {type(v.owner.op).__name__ for v in ancestors([total]) if v.owner is not None}
    assert "CompiledLogLike" in ops
    a = {k: pt.as_tensor_variable(v) for k, v in arrays.items()}
    ref = pt.sum(a["weight"] * model.logp(sym, a))
    got = pytensor.function(list(sym.values()), [total, ref])(0.6, 5.0, 0.7, 3.0)
    assert got[0] == pytest.approx(got[1], rel=1e-13)
