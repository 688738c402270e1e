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

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op


@numba.njit(cache=True, error_model="numpy")
def digamma(v: float) -> float:
    """ψ(v) for v > 0: recurrence up to v ≥ 10, then the asymptotic series (error < 1e-14)."""
    acc = 0.0
    while v < 10.0:
        acc -= 1.0 / v
        v += 1.0
    inv2 = 1.0 / (v * v)
    tail = inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240 - inv2 / 132))))
    return acc + math.log(v) - 0.5 / v - tail


@numba.njit(cache=True, error_model="numpy")
def softplus_logistic(d: float) -> tuple[float, float]:
    """(log(1 + e^d), 1 / (1 + e^-d)): softplus and its derivative, without overflow."""
    if d > 0.0:
        e = math.exp(-d)
        return d + math.log1p(e), 1.0 / (1.0 + e)
    e = math.exp(d)
    return math.log1p(e), e / (1.0 + e)


@numba.njit(cache=True, error_model="numpy")
def nbd_alive_sum(
    r: float, alpha: float, ux: np.ndarray, wx: np.ndarray, uT: np.ndarray, wT: np.ndarray,
    xT: np.ndarray, grad: np.ndarray,
) -> float:
    """Σ weight · log[Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))], the NBD part that BG/NBD, MBG/NBD and
    Pareto/NBD share, from the distinct x (``ux``, summed weights ``wx``) and the distinct T
    (``uT``, summed weights ``wT``, Σ weight·x ``xT``); adds its gradient to ``grad[0]`` (r) and
    ``grad[1]`` (α). r·log(α/(α+T)) is written −r·log1p(T/α)."""
    total = 0.0
    w_all = 0.0
    for j in range(ux.size):
        total += wx[j] * math.lgamma(r + ux[j])
        grad[0] += wx[j] * digamma(r + ux[j])
        w_all += wx[j]
    total -= w_all * math.lgamma(r)
    grad[0] -= w_all * digamma(r)
    for j in range(uT.size):
        l1p = math.log1p(uT[j] / alpha)
        total += -r * wT[j] * l1p - xT[j] * math.log(alpha + uT[j])
        grad[0] -= wT[j] * l1p
        grad[1] += r * wT[j] * uT[j] / (alpha * (alpha + uT[j])) - xT[j] / (alpha + uT[j])
    return total


@numba.njit(cache=True, error_model="numpy")
def log_and_inverse(c: float, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(c + u) and 1/(c + u) for each distinct value u, gathered by the per-row loops."""
    return np.log(c + u), 1.0 / (c + u)


def grouped(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A model's compressed arrays (``x``, ``t_x``, ``T``, ``weight``) with what the kernels
    group by: the distinct x, T and t_x (``ux``, ``uT``, ``ut``), each row's position among
    them (``ix``, ``iT``, ``it``, as floats: the kernels' data are float64), the summed weights
    per distinct x and T (``wx``, ``wT``) and Σ weight·x per distinct T (``xT``)."""
    x, t_x, T, w = (np.asarray(arrays[k], dtype=np.float64) for k in ("x", "t_x", "T", "weight"))
    out = {"x": x, "t_x": t_x, "T": T, "weight": w}
    for name, values in (("x", x), ("T", T), ("t", t_x)):
        levels, index = np.unique(values, return_inverse=True)
        out[f"u{name}"], out[f"i{name}"] = levels, index.ravel().astype(np.float64)
    ix, iT = out["ix"].astype(np.int64), out["iT"].astype(np.int64)
    out["wx"] = np.bincount(ix, weights=w, minlength=len(out["ux"]))
    out["wT"] = np.bincount(iT, weights=w, minlength=len(out["uT"]))
    out["xT"] = np.bincount(iT, weights=w * x, minlength=len(out["uT"]))
    return out


@functools.cache
def _kernels() -> dict[str, Callable[..., tuple[float, np.ndarray]]]:
    from cbcv.models.bgnbd_kernel import bg_loglike_sum, mbg_loglike_sum
    from cbcv.models.pareto_integral import pareto_loglike_sum

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
