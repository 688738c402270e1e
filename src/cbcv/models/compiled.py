"""Compiled log-likelihoods for fitting: one PyTensor Op that returns a model's summed
log-likelihood and its gradient from a Numba kernel.

NUTS evaluates the log-likelihood and its gradient at every leapfrog step. For the models whose
likelihood is a sum over distinct customer summaries (BG/NBD, MBG/NBD, Pareto/NBD), a kernel
that loops over the rows once and accumulates the value and the four partial derivatives in
closed form costs less than PyTensor's generated graph and its reverse pass (see each kernel's
module for the figures). The pointwise PyTensor likelihood of each model stays the reference:
LOO and predictions use it, and the tests check each kernel against it.

A kernel has the signature ``kernel(p1, p2, p3, p4, *arrays) -> (total, grad)`` with four
scalar parameters (in the model's ``param_names`` order), float64 data arrays, and ``grad`` a
length-4 array. :class:`CompiledLogLike` wraps it for PyTensor's C backend (``perform``) and its
Numba backend (used by nutpie).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from cbcv.models.bgnbd_kernel import bg_loglike_sum, mbg_loglike_sum
from cbcv.models.pareto_integral import pareto_loglike_sum


def _kernels() -> dict[str, Callable[..., tuple[float, np.ndarray]]]:
    return {"bgnbd": bg_loglike_sum, "mbgnbd": mbg_loglike_sum, "pareto_nbd": pareto_loglike_sum}


class CompiledLogLike(Op):
    """``(total, grad) = CompiledLogLike(model)(p1, p2, p3, p4, *arrays)``: the summed
    log-likelihood of ``model`` ("bgnbd", "mbgnbd", "pareto_nbd") and its gradient in the four
    parameters, which the Op's own gradient uses. The arrays are data (no gradient)."""

    __props__ = ("model",)

    def __init__(self, model: str) -> None:
        if model not in ("bgnbd", "mbgnbd", "pareto_nbd"):
            raise ValueError(f"CompiledLogLike: no kernel for model {model!r}")
        self.model = model

    def make_node(self, *inputs: Any) -> Apply:
        tensors = [pt.as_tensor_variable(v).astype("float64") for v in inputs]
        if len(tensors) < 5:
            raise TypeError(f"CompiledLogLike({self.model}): four parameters and the data arrays")
        if any(v.ndim != 0 for v in tensors[:4]):
            raise TypeError(f"CompiledLogLike({self.model}): the four parameters must be scalars")
        return Apply(self, tensors, [pt.dscalar(), pt.dvector()])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage: list[list[Any]]) -> None:
        params = [float(v) for v in inputs[:4]]
        arrays = [np.ascontiguousarray(v, dtype=np.float64) for v in inputs[4:]]
        total, grad = _kernels()[self.model](*params, *arrays)
        output_storage[0][0] = np.asarray(total)
        output_storage[1][0] = grad

    def infer_shape(self, fgraph: Any, node: Apply, shapes: list[tuple]) -> list[tuple]:
        return [(), (4,)]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        return [[True, True]] * 4 + [[False, False]] * (len(node.inputs) - 4)

    def grad(self, inputs: list[Any], output_grads: list[Any]) -> list[Any]:
        n_data = len(inputs) - 4
        g = output_grads[0]
        if isinstance(g.type, DisconnectedType):
            return [pt.zeros(())] * 4 + [DisconnectedType()()] * n_data
        grad = self(*inputs)[1]
        return [g * grad[k] for k in range(4)] + [DisconnectedType()()] * n_data


def compiled_total(model: str, params: tuple[Any, Any, Any, Any], arrays: list[np.ndarray]) -> pt.TensorVariable:
    """The summed log-likelihood of ``model`` as a PyTensor scalar (its gradient included)."""
    total, _ = CompiledLogLike(model)(*params, *arrays)
    return total


def _numba_compiled(op: CompiledLogLike, node: Any = None, **kwargs: Any) -> Any:
    """The Op in PyTensor's Numba backend (used by nutpie): the same compiled kernel."""
    kernel = _kernels()[op.model]

    @numba.njit(error_model="numpy")
    def compiled_loglike(p1, p2, p3, p4, *arrays):  # type: ignore[no-untyped-def]
        total, grad = kernel(p1.item(), p2.item(), p3.item(), p4.item(), *arrays)
        return np.asarray(total), grad

    return compiled_loglike


try:  # PyTensor >= 2.36 caches Numba functions by a key from the Op's props
    from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

    register_funcify_default_op_cache_key(CompiledLogLike)(_numba_compiled)
except ImportError:  # pragma: no cover - older PyTensor
    from pytensor.link.numba.dispatch import numba_funcify

    numba_funcify.register(CompiledLogLike)(_numba_compiled)
