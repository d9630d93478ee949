"""Floating-point products and sums each rounded once: never a fused multiply-add.

The engines' float arithmetic that feeds a sum (the fused forward pass, the activations,
the observations' unit vectors) goes through :func:`rn_mul` and :func:`rn_add`, so that the
CPU engine and the CUDA engine compute the same bits from one source:

* on the CPU they are the plain operators, inlined: numba compiles without fast-math, so
  LLVM never contracts ``a * b + c`` into an FMA there;
* on the CUDA target (:mod:`.cuda` registers the implementations, only when it is imported)
  they are libdevice's ``__nv_fmul_rn`` / ``__nv_fadd_rn`` (float32) and ``__nv_dmul_rn`` /
  ``__nv_dadd_rn`` (float64), which NVVM emits as ``mul.rn`` / ``add.rn`` instructions and
  never contracts, where it would contract plain ``a * b + c`` into ``fma.rn`` (one rounding
  instead of two: other bits) by default, with or without numba's ``fastmath``;
* under numba's CUDA simulator, and called from Python, they are these Python functions.

Types as numba's operators: float32 with float32 gives float32; float64, or an integer
with a float, gives float64 (the integer converted first).
"""

from __future__ import annotations

from numba import types
from numba.core.extending import overload


def rn_mul(a, b):
    """``a * b`` rounded once; never part of an FMA."""
    return a * b


def rn_add(a, b):
    """``a + b`` rounded once; never part of an FMA (``a - b`` is ``rn_add(a, -b)``, the same bits)."""
    return a + b


def rn_types(a, b) -> bool:
    """Whether numba types ``(a, b)`` are what rn_mul / rn_add take: floats, or an integer and a float."""
    number = (types.Float, types.Integer)
    return (isinstance(a, number) and isinstance(b, number)
            and (isinstance(a, types.Float) or isinstance(b, types.Float)))


# Not inline="always" (numba IR inlining): numba's inlining pass takes an inline overload
# typed for the same argument types in this process without looking at its target, so the
# CUDA kernel could inline these CPU implementations instead of .cuda's. LLVM inlines the
# calls on the CPU all the same.


@overload(rn_mul, target="cpu")
def _rn_mul_cpu(a, b):
    if rn_types(a, b):
        return lambda a, b: a * b
    return None


@overload(rn_add, target="cpu")
def _rn_add_cpu(a, b):
    if rn_types(a, b):
        return lambda a, b: a + b
    return None
