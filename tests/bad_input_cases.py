"""The bad-input matrix, declared case by case; tests/test_bad_inputs.py runs it.

Every public op, functional and layer gets the same families of cases: wrong dtype (int, bool,
object, float16, complex, byte-swapped), wrong ndim, mismatched shapes, zero and negative sizes
and parameters, zero-size arrays, NaN/Inf, non-contiguous / negatively strided / broadcast /
misaligned / read-only views, read-only ``out``, NumPy mixed with CuPy, and sizes whose index
arithmetic passes 2**31. A case is one of

- ``Raises``: the call must raise one of the given exception types and its message must match a
  regex that names the argument (and, for shape errors, the shapes);
- ``Same``: a valid-but-unusual call must give the NumPy float64 reference's values;
- ``SameOrRaises``: either of the two (huge sizes: work, or MemoryError/ValueError naming the
  argument).

The cases run in a child interpreter, one per group, so that a crash or a hang fails the group
and names the case that was running:

    python tests/bad_input_cases.py GROUP     # JSON lines: {"start": id}, {"id", "ok", "msg"}
    python tests/bad_input_cases.py --counts  # cases per group and op

CuPy is emulated by tools/cuda_emu/fake_cupy (its ndarray's module is "cupy"), which the child
puts on sys.path unless the real CuPy is installed.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_CUPY = os.path.join(os.path.dirname(HERE), "tools", "cuda_emu", "fake_cupy")

GROUPS = {}  # name -> function returning a list of cases (called only in the child)


def group(name):
    def deco(fn):
        GROUPS[name] = fn
        return fn
    return deco


# ---- case kinds --------------------------------------------------------------------------------

class Case:
    def __init__(self, op, cid, call):
        self.op, self.id, self.call = op, f"{op}/{cid}", call


class Raises(Case):
    def __init__(self, op, cid, call, exc, match):
        super().__init__(op, cid, call)
        self.exc = exc if isinstance(exc, tuple) else (exc,)
        self.match = match

    def run(self):
        try:
            got = self.call()
        except self.exc as e:
            if not re.search(self.match, str(e)):
                return f"{type(e).__name__} message {str(e)!r} does not match {self.match!r}"
            return None
        except Exception as e:  # noqa: BLE001
            return (f"expected {'/'.join(x.__name__ for x in self.exc)} matching "
                    f"{self.match!r}, got {type(e).__name__}: {e}")
        return f"no exception (returned {_describe(got)})"


class Same(Case):
    """call() must equal ref() (nested tuples/lists of arrays, None entries allowed)."""

    def __init__(self, op, cid, call, ref, rtol=2e-4, atol=2e-5):
        super().__init__(op, cid, call)
        self.ref, self.rtol, self.atol = ref, rtol, atol

    def run(self):
        try:
            got = self.call()
        except Exception as e:  # noqa: BLE001
            return f"raised {type(e).__name__}: {e}"
        return _compare(got, self.ref(), self.rtol, self.atol)


class SameOrRaises(Same):
    def __init__(self, op, cid, call, ref, exc, match, rtol=2e-4, atol=2e-5):
        super().__init__(op, cid, call, ref, rtol, atol)
        self.exc = exc if isinstance(exc, tuple) else (exc,)
        self.match = match

    def run(self):
        try:
            got = self.call()
        except self.exc as e:
            if not re.search(self.match, str(e)):
                return f"{type(e).__name__} message {str(e)!r} does not match {self.match!r}"
            return None
        except Exception as e:  # noqa: BLE001
            return f"raised {type(e).__name__}: {e}"
        return _compare(got, self.ref(), self.rtol, self.atol)


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"array {x.dtype} {x.shape}"
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in x) + ")"
    return type(x).__name__


def _compare(got, want, rtol, atol, path="result"):
    if want is None:
        return None if got is None else f"{path}: expected None, got {_describe(got)}"
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"{path}: expected {len(want)} results, got {_describe(got)}"
        for i, (g, w) in enumerate(zip(got, want)):
            err = _compare(g, w, rtol, atol, f"{path}[{i}]")
            if err:
                return err
        return None
    if hasattr(got, "data") and type(got).__name__ in ("Tensor", "Parameter"):
        got = got.data
    g, w = np.asarray(got), np.asarray(want)
    if g.shape != w.shape:
        return f"{path}: shape {g.shape}, expected {w.shape}"
    if g.dtype.kind not in "fiub" or w.dtype.kind not in "fiub":
        return f"{path}: dtype {g.dtype} / {w.dtype} is not numeric"
    try:
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                   atol=atol, equal_nan=True)
    except AssertionError as e:
        return f"{path}: values differ from the reference:{str(e)[:600]}"
    return None


# ---- array helpers -----------------------------------------------------------------------------

_RNG = np.random.default_rng(20261124)


def randn(*shape, dtype=np.float32):
    return _RNG.standard_normal(shape).astype(dtype)


def f64(x):
    return None if x is None else np.array(x, dtype=np.float64)


def readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def misaligned(a, offset=1):
    """A C-contiguous copy of a whose data pointer is `offset` bytes off its item alignment."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 64, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert a.size == 0 or a.itemsize == 1 or not out.flags.aligned or offset % a.itemsize == 0
    return out


def strided(a, axis=-1):
    """A view of a's values with stride 2 along axis (a not-contiguous view)."""
    a = np.asarray(a)
    shp = list(a.shape)
    shp[axis] *= 2
    big = np.zeros(shp, a.dtype)
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(None, None, 2)
    big[tuple(sl)] = a
    return big[tuple(sl)]


def negstride(a, axis=0):
    """A view of a's values with a negative stride along axis."""
    a = np.asarray(a)
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(None, None, -1)
    return np.array(a[tuple(sl)])[tuple(sl)]


def fortran(a):
    return np.asfortranarray(a)


def bcast(a, axis=0):
    """A stride-0 view along axis: every slice along it equals the first (values change)."""
    a = np.asarray(a)
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(0, 1)
    return np.broadcast_to(a[tuple(sl)], a.shape)


def byteswapped(a):
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder())


LAYOUTS = {  # name -> view maker; all keep the values except bcast (the reference sees a copy)
    "fortran": fortran, "strided": strided, "negstride": negstride, "negstride_last":
    lambda a: negstride(a, -1), "bcast": bcast, "misaligned": misaligned, "readonly": readonly,
}

BAD_DTYPES = {  # name -> converter
    "int32": lambda a: np.asarray(a).astype(np.int32),
    "int64": lambda a: np.asarray(a).astype(np.int64),
    "bool": lambda a: np.asarray(a) > 0,
    "object": lambda a: np.asarray(a).astype(object),
    "float16": lambda a: np.asarray(a).astype(np.float16),
    "complex64": lambda a: np.asarray(a).astype(np.complex64),
}


def cupy_array(a):
    import cupy
    return cupy.asarray(a)


def cupy_available():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def gpu_path_absent():
    """True when a lone CuPy argument cannot run on bigmodel's CUDA module (no GPU here): the
    op must then refuse it, never run it on the CPU and hand back a NumPy array."""
    from bigmodel.ops import _backend
    return cupy_available() and not _backend.cuda_available()


def use_cupy_or_emulation():
    """Real CuPy when installed (a GPU machine), else tools/cuda_emu's stand-in."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        if os.path.isdir(FAKE_CUPY) and FAKE_CUPY not in sys.path:
            sys.path.insert(0, FAKE_CUPY)


# ---- generic families over one op --------------------------------------------------------------

class Spec:
    """One op called as fn(**make()); `arrays` maps keyword -> the name its messages use.

    ref(**kw) is the float64 reference on the same keywords (None when values are not checked).
    """

    def __init__(self, op, fn, make, arrays, ref=None, rtol=2e-4, atol=2e-5, layouts=None,
                 dtypes=None, ndim=None, cupy=None, list_arg=None, extra_dims=1, prefix="",
                 msg_op=None, bad_dtypes=None, single_cupy=True, layout_names=None):
        self.layout_names = layout_names or list(LAYOUTS)
        self.prefix, self.msg_op = prefix, msg_op
        self.bad_dtypes = bad_dtypes or {}
        self.single_cupy = single_cupy
        self.op, self.fn, self.make, self.arrays, self.ref = op, fn, make, arrays, ref
        self.rtol, self.atol = rtol, atol
        keys = list(arrays)
        self.layouts = keys if layouts is None else layouts
        self.dtypes = keys if dtypes is None else dtypes
        self.ndim = keys if ndim is None else ndim
        self.cupy = keys if cupy is None else cupy
        self.list_arg = keys if list_arg is None else list_arg
        self.extra_dims = extra_dims

    def call_with(self, key, conv):
        def call():
            kw = self.make()
            kw[key] = conv(kw[key])
            return self.fn(**kw)
        return call

    def ref_with(self, key, conv):
        def ref():
            kw = self.make()
            kw[key] = np.array(conv(kw[key]))
            return self.ref(**kw)
        return ref

    def cases(self):
        out = self._cases()
        for c in out:
            c.id = f"{c.op}/{self.prefix}{c.id.split('/', 1)[1]}"
        return out

    def _cases(self):
        out = []
        op = self.op
        mop = self.msg_op or op
        for key, name in self.arrays.items():
            nm = re.escape(name)
            if key in self.dtypes:
                for dn, conv in self.bad_dtypes.get(key, BAD_DTYPES).items():
                    out.append(Raises(op, f"{key}_{dn}", self.call_with(key, conv), TypeError,
                                      rf"{mop}.*\b{nm}\b.*{dn if dn != 'bool' else 'bool'}"))
            if key in self.list_arg:
                out.append(Raises(op, f"{key}_list", self.call_with(key, lambda a: np.asarray(a).tolist()),
                                  TypeError, rf"{mop}.*\b{nm}\b.*list"))
            if key in self.ndim:
                plus = (None,) * self.extra_dims
                out.append(Raises(op, f"{key}_ndim_plus", self.call_with(key, lambda a: np.asarray(a)[plus]),
                                  ValueError, rf"{mop}.*\b{nm}\b.*shape"))
                out.append(Raises(op, f"{key}_ndim_0d", self.call_with(key, lambda a: np.asarray(a).reshape(-1)[0:1].reshape(())),
                                  ValueError, rf"{mop}.*\b{nm}\b"))
            if key in self.cupy and cupy_available() and len(self.arrays) > 1:
                out.append(Raises(op, f"{key}_on_gpu", self.call_with(key, cupy_array), ValueError,
                                  rf"{mop}: arrays are on different devices.*\b{nm}\)? on GPU"))
            elif key in self.cupy and self.single_cupy and gpu_path_absent():
                # a lone CuPy array: the GPU path, which is absent here (never a CPU run that
                # returns a NumPy array for a CuPy input)
                out.append(Raises(op, f"{key}_on_gpu", self.call_with(key, cupy_array),
                                  (NotImplementedError, RuntimeError),
                                  rf"{mop}.*(CUDA|GPU|CuPy)|CUDA module|no GPU"))
        if self.ref is not None:
            for key in self.layouts:
                for ln, conv in LAYOUTS.items():
                    if ln not in self.layout_names:
                        continue
                    probe = self.make()[key]
                    if probe is None or (ln == "fortran" and np.ndim(probe) < 2):
                        continue
                    if ln == "misaligned" and np.asarray(probe).itemsize > 1:
                        out.append(Same(op, f"{key}_{ln}", self.call_with(key, conv),
                                        self.ref_with(key, conv), self.rtol, self.atol))
                        if np.asarray(probe).itemsize == 8:
                            m4 = lambda a: misaligned(a, 4)  # noqa: E731
                            out.append(Same(op, f"{key}_{ln}4", self.call_with(key, m4),
                                            self.ref_with(key, m4), self.rtol, self.atol))
                        continue
                    out.append(Same(op, f"{key}_{ln}", self.call_with(key, conv),
                                    self.ref_with(key, conv), self.rtol, self.atol))
                if np.asarray(self.make()[key]).dtype.kind == "f":
                    out.append(SameOrRaises(op, f"{key}_byteswapped",
                                            self.call_with(key, byteswapped),
                                            self.ref_with(key, byteswapped), TypeError,
                                            rf"{mop}.*\b{re.escape(self.arrays[key])}\b.*>f|"
                                            rf"{mop}.*\b{re.escape(self.arrays[key])}\b.*byte order",
                                            self.rtol, self.atol))
        return out


def valid_call_case(spec):
    """The unmodified call matches the reference (sanity for the case's own builder)."""
    return Same(spec.op, spec.prefix + "valid", lambda: spec.fn(**spec.make()),
                lambda: spec.ref(**spec.make()), spec.rtol, spec.atol)


def det(seed, *shape, dtype=np.float32, scale=1.0):
    """Deterministic normal data: the same seed gives the same array in every make() call."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def with_nan(a, index=0, value=np.nan):
    a = np.array(a)
    a.reshape(-1)[index] = value
    return a


# ---- GEMM --------------------------------------------------------------------------------------

@group("gemm")
def _gemm_cases():
    from bigmodel import ops
    from bigmodel import reference as R
    out = []

    def mk():
        return dict(a=det(1, 3, 4), b=det(2, 4, 5), c=det(3, 3, 5))

    g = Spec("gemm", lambda a, b, c: ops.gemm(a, b, c, alpha=1.5, beta=0.5), mk,
             {"a": "a", "b": "b", "c": "c"},
             ref=lambda a, b, c: R.gemm(a, b, c, alpha=1.5, beta=0.5), extra_dims=2,
             ndim=["a", "b"])
    out += [valid_call_case(g)] + g.cases()
    gb = Spec("gemm", lambda a, b: ops.gemm(a, b, trans_b=True, alpha=-1.0),
              lambda: dict(a=det(4, 2, 3, 4), b=det(5, 2, 6, 4)), {"a": "a", "b": "b"},
              ref=lambda a, b: R.gemm(a, b, trans_b=True, alpha=-1.0), dtypes=[], list_arg=[],
              ndim=[], cupy=[], prefix="batched_")
    out += gb.cases()
    m = Spec("matmul", lambda a, b: ops.matmul(a, b), lambda: dict(a=det(6, 5, 3), b=det(7, 3, 2)),
             {"a": "a", "b": "b"}, ref=R.matmul, extra_dims=2, msg_op="(?:matmul|gemm)")
    out += [valid_call_case(m)] + m.cases()

    G = "gemm"

    def raises(cid, call, exc, match):
        out.append(Raises(G, cid, call, exc, match))

    def same(cid, call, ref, **kw):
        out.append(Same(G, cid, call, ref, **kw))

    a, b, c = det(1, 3, 4), det(2, 4, 5), det(3, 3, 5)
    raises("inner_mismatch", lambda: ops.gemm(det(1, 3, 4), det(2, 5, 2)), ValueError,
           r"gemm: inner dimensions differ.*a.shape=\(3, 4\), b.shape=\(5, 2\)")
    raises("inner_mismatch_trans", lambda: ops.gemm(det(1, 3, 4), det(2, 4, 5), trans_b=True),
           ValueError, r"inner dimensions differ.*a.shape=\(3, 4\), b.shape=\(4, 5\).*trans_b=True")
    raises("batch_mismatch", lambda: ops.gemm(det(1, 2, 3, 4), det(2, 3, 4, 5)), ValueError,
           r"batch dimensions do not broadcast: a.shape=\(2, 3, 4\), b.shape=\(3, 4, 5\)")
    raises("c_shape", lambda: ops.gemm(a, b, det(3, 4, 5), beta=1.0), ValueError,
           r"gemm: c.shape=\(4, 5\) does not broadcast to the result shape \(3, 5\)")
    raises("out_shape", lambda: ops.gemm(a, b, out=np.empty((5, 3), np.float32)), ValueError,
           r"gemm: out.shape=\(5, 3\), expected \(3, 5\)")
    raises("out_dtype_f64", lambda: ops.gemm(a, b, out=np.empty((3, 5))), TypeError,
           r"gemm: out must have dtype float32, got float64")
    raises("out_dtype_int", lambda: ops.gemm(a, b, out=np.empty((3, 5), np.int32)), TypeError,
           r"gemm: out must have dtype float32, got int32")
    raises("out_readonly", lambda: ops.gemm(a, b, out=readonly(np.empty((3, 5), np.float32))),
           ValueError, r"gemm: out is read-only")
    rc = readonly(c)
    raises("out_readonly_is_c", lambda: ops.gemm(a, b, rc, beta=1.0, out=rc), ValueError,
           r"gemm: out is read-only")
    raises("out_list", lambda: ops.gemm(a, b, out=[[0.0] * 5] * 3), TypeError,
           r"gemm: out must be a numpy.ndarray or cupy.ndarray, got list")
    if cupy_available():
        raises("out_on_gpu", lambda: ops.gemm(a, b, out=cupy_array(np.empty((3, 5), np.float32))),
               ValueError, r"gemm: arrays are on different devices.*out on GPU")
    raises("dtype_mix", lambda: ops.gemm(a, b.astype(np.float64)), TypeError,
           r"gemm: a and b must have the same dtype, got float32 and float64")
    raises("precision_bad", lambda: ops.gemm(a, b, precision="fp8"), ValueError,
           r"gemm: precision must be one of .*'fp8'")
    raises("precision_gpu_only", lambda: ops.gemm(a, b, precision="tf32"), ValueError,
           r"gemm: precision must be one of .*'tf32'")
    raises("precision_bf16_f64", lambda: ops.gemm(a.astype(np.float64), b.astype(np.float64),
                                                   precision="bf16"),
           (TypeError, ValueError), r"gemm: precision='bf16' needs float32")
    raises("alpha_str", lambda: ops.gemm(a, b, alpha="2"), TypeError,
           r"gemm: alpha must be a real number, got str")
    raises("beta_none", lambda: ops.gemm(a, b, c, beta=None), TypeError,
           r"gemm: beta must be a real number, got NoneType")
    raises("alpha_complex", lambda: ops.gemm(a, b, alpha=1j), TypeError,
           r"gemm: alpha must be a real number, got complex")
    raises("trans_a_str", lambda: ops.gemm(a, b, trans_a="no"), TypeError,
           r"gemm: trans_a must be a bool")
    try:
        import ml_dtypes
        raises("bf16_with_f32", lambda: ops.gemm(a.astype(ml_dtypes.bfloat16), b), TypeError,
               r"gemm: .*\bb\b.*float32")
    except ImportError:
        pass

    # zero sizes: the result has the right shape and is beta * c (or empty)
    for cid, (sa, sb) in {"K0": ((3, 0), (0, 5)), "M0": ((0, 4), (4, 5)), "N0": ((3, 4), (4, 0)),
                          "batch0": ((0, 3, 4), (1, 4, 5)), "all0": ((0, 0), (0, 0)),
                          "batched_K0": ((2, 3, 0), (1, 0, 5)), "batched_M0": ((1, 0, 4), (2, 4, 5)),
                          "batched_N0": ((1, 1, 1), (1, 1, 0)), "batched_all0": ((1, 0, 0), (1, 0, 0))}.items():
        sc = np.broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2], sb[-1])
        same(f"zero_{cid}", lambda sa=sa, sb=sb, sc=sc: ops.gemm(det(1, *sa), det(2, *sb), det(3, *sc),
                                                                 alpha=2.0, beta=0.5),
             lambda sa=sa, sb=sb, sc=sc: R.gemm(det(1, *sa), det(2, *sb), det(3, *sc), alpha=2.0,
                                               beta=0.5))
    # NaN / Inf propagate as in the reference
    same("nan_in_a", lambda: ops.gemm(with_nan(a, 5), b), lambda: R.gemm(with_nan(a, 5), b))
    same("inf_in_b", lambda: ops.gemm(a, with_nan(b, 7, np.inf)),
         lambda: R.gemm(a, with_nan(b, 7, np.inf)))
    same("nan_in_c", lambda: ops.gemm(a, b, with_nan(c, 2), beta=1.0),
         lambda: R.gemm(a, b, with_nan(c, 2), beta=1.0))
    same("nan_in_c_beta0", lambda: ops.gemm(a, b, with_nan(c, 2), beta=0.0),
         lambda: R.gemm(a, b, with_nan(c, 2), beta=0.0))
    same("alpha_nan", lambda: ops.gemm(a, b, alpha=float("nan")),
         lambda: R.gemm(a, b, alpha=float("nan")))
    same("alpha_inf", lambda: ops.gemm(a, b, alpha=float("inf")),
         lambda: R.gemm(a, b, alpha=float("inf")))
    # out as an unusual view: written through its strides, returned
    for ln in ("fortran", "strided", "negstride", "negstride_last", "misaligned"):
        def call(ln=ln):
            o = LAYOUTS[ln](np.zeros((3, 5), np.float32))
            r = ops.gemm(a, b, c, alpha=1.5, beta=0.5, out=o)
            assert r is o, "gemm did not return out"
            return o
        same(f"out_{ln}", call, lambda: R.gemm(a, b, c, alpha=1.5, beta=0.5))

    def out_is_a():
        x = det(8, 4, 4)
        return ops.gemm(x, det(9, 4, 4), out=x)
    same("out_aliases_a", out_is_a, lambda: R.gemm(det(8, 4, 4), det(9, 4, 4)))

    def out_is_c():
        cc = det(3, 3, 5)
        ops.gemm(a, b, cc, beta=-2.0, out=cc)
        return cc
    same("out_is_c", out_is_c, lambda: R.gemm(a, b, c, beta=-2.0))

    def out_overlaps_c():
        buf = det(10, 4, 5)
        ops.gemm(a, b, buf[1:], beta=1.0, out=buf[:3])
        return buf[:3]
    same("out_overlaps_c", out_overlaps_c, lambda: R.gemm(a, b, det(10, 4, 5)[1:], beta=1.0))
    same("trans_views", lambda: ops.gemm(negstride(fortran(det(1, 4, 3))), strided(det(2, 5, 4)),
                                         trans_a=True, trans_b=True),
         lambda: R.gemm(det(1, 4, 3), det(2, 5, 4), trans_a=True, trans_b=True))
    same("bcast_batch_out", lambda: ops.gemm(bcast(det(1, 3, 2, 4)), det(2, 3, 4, 5)),
         lambda: R.gemm(bcast(det(1, 3, 2, 4)), det(2, 3, 4, 5)))
    same("f64", lambda: ops.gemm(det(1, 3, 4, dtype=np.float64), det(2, 4, 5, dtype=np.float64)),
         lambda: R.gemm(det(1, 3, 4, dtype=np.float64), det(2, 4, 5, dtype=np.float64)),
         rtol=1e-12, atol=1e-12)
    return out


def _param_cases(out, op, name, call_with_value, bad_values, extra=()):
    """ValueError/TypeError naming `name` for each bad value of one scalar/pair parameter."""
    for cid, (v, exc) in bad_values.items():
        out.append(Raises(op, f"{name}_{cid}", lambda v=v: call_with_value(v), exc,
                          rf"{op}: {name}\b"))


PAIR_BAD = {  # value, exception, for stride / dilation / kernel_size (must be >= 1)
    "zero": (0, ValueError), "negative": (-1, ValueError), "pair_zero": ((1, 0), ValueError),
    "one_elem": ((1,), TypeError), "three": ((1, 1, 1), TypeError), "float": (1.5, TypeError),
    "str": ("2", TypeError), "none": (None, TypeError), "bool": (True, TypeError),
    "huge": (2 ** 63, ValueError), "huge_neg": (-2 ** 63 - 1, ValueError),
}
PAD_BAD = {"negative": (-1, ValueError), "pair_neg": ((0, -2), ValueError),
           "float": (0.5, TypeError), "three": ((1, 1, 1), TypeError), "none": (None, TypeError),
           "huge": (2 ** 63, ValueError)}


# ---- conv2d ------------------------------------------------------------------------------------

@group("conv")
def _conv_cases():
    from bigmodel import ops
    from bigmodel import reference as R
    out = []
    geo = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)

    def mk():
        return dict(x=det(11, 2, 4, 7, 6), w=det(12, 6, 2, 3, 3), b=det(13, 6))

    names = {"x": "x", "w": "weight", "b": "bias"}
    s = Spec("conv2d", lambda x, w, b: ops.conv2d(x, w, b, **geo), mk, names,
             ref=lambda x, w, b: R.conv2d(x, w, b, **geo), extra_dims=1)
    out += [valid_call_case(s)] + s.cases()
    for algo, mk2, g2 in (
            ("small", lambda: dict(x=det(14, 2, 3, 9, 8), w=det(15, 5, 3, 3, 3), b=det(16, 5)),
             dict(stride=2, padding=1)),
            ("depthwise", lambda: dict(x=det(17, 2, 4, 6, 9), w=det(18, 8, 1, 3, 3), b=det(19, 8)),
             dict(padding="same", groups=4, dilation=2)),
            ("gemm", lambda: dict(x=det(20, 1, 5, 6, 6), w=det(21, 3, 5, 2, 2), b=None),
             dict(padding="same"))):
        s2 = Spec("conv2d", lambda x, w, b, g2=g2, algo=algo: ops.conv2d(x, w, b, algo=algo, **g2),
                  mk2, names, ref=lambda x, w, b, g2=g2: R.conv2d(x, w, b, **g2), dtypes=[],
                  list_arg=[], ndim=[], cupy=[], prefix=f"{algo}_")
        out += [valid_call_case(s2)] + s2.cases()

    def mkb():
        x, w = det(11, 2, 4, 7, 6), det(12, 6, 2, 3, 3)
        return dict(dy=det(22, 2, 6, 4, 4), x=x, w=w)

    sb = Spec("conv2d_backward", lambda dy, x, w: ops.conv2d_backward(dy, x, w, **geo), mkb,
              {"dy": "dy", "x": "x", "w": "weight"},
              ref=lambda dy, x, w: R.conv2d_backward(dy, x, w, **geo))
    out += [valid_call_case(sb)] + sb.cases()

    x, w, b = mk()["x"], mk()["w"], mk()["b"]
    op = "conv2d"

    def raises(cid, call, exc, match, op=op):
        out.append(Raises(op, cid, call, exc, match))

    raises("channels", lambda: ops.conv2d(x, det(1, 6, 3, 3, 3)), ValueError,
           r"conv2d: weight expects 3 input channels, x has 4 \(x.shape=\(2, 4, 7, 6\), "
           r"weight.shape=\(6, 3, 3, 3\)\)")
    raises("groups_channels", lambda: ops.conv2d(x, det(1, 8, 2, 3, 3), groups=4), ValueError,
           r"conv2d: weight expects 8 input channels \(2 per group x groups=4\), x has 4")
    raises("groups_divide", lambda: ops.conv2d(x, det(1, 6, 1, 3, 3), groups=3), ValueError,
           r"conv2d: groups=3 must divide the input channels \(4\)")
    for cid, (v, exc) in {"zero": (0, ValueError), "negative": (-2, ValueError),
                          "float": (2.0, TypeError), "bool": (True, TypeError),
                          "none": (None, TypeError), "huge": (2 ** 63, ValueError)}.items():
        raises(f"groups_{cid}", lambda v=v: ops.conv2d(x, w, groups=v), exc, r"conv2d: groups\b")
    _param_cases(out, op, "stride", lambda v: ops.conv2d(x, w, groups=2, stride=v), PAIR_BAD)
    _param_cases(out, op, "dilation", lambda v: ops.conv2d(x, w, groups=2, dilation=v), PAIR_BAD)
    _param_cases(out, op, "padding", lambda v: ops.conv2d(x, w, groups=2, padding=v), PAD_BAD)
    raises("padding_str", lambda: ops.conv2d(x, w, groups=2, padding="full"), ValueError,
           r"conv2d: padding must be an int, a pair, 'valid' or 'same', got 'full'")
    raises("padding_same_stride", lambda: ops.conv2d(x, w, groups=2, padding="same", stride=2),
           ValueError, r"conv2d: padding='same' needs stride 1")
    raises("padding_large", lambda: ops.conv2d(x, w, groups=2, padding=2 ** 40),
           ValueError, r"conv2d: padding must be <= 2147483647")
    raises("padding_max_output_too_big", lambda: ops.conv2d(x, w, groups=2, padding=2 ** 31 - 1),
           MemoryError, r"conv2d: cannot allocate the output of shape \(2, 6, \d+, \d+\).*padding=2147483647")
    raises("kernel_too_big", lambda: ops.conv2d(x, det(1, 6, 2, 9, 3), groups=2), ValueError,
           r"conv2d: kernel \(9x3 with dilation \(1, 1\)\) is larger than the padded input "
           r"\(7x6\) \(x.shape=\(2, 4, 7, 6\), weight.shape=\(6, 2, 9, 3\)\)")
    raises("dilation_too_big", lambda: ops.conv2d(x, w, groups=2, dilation=4), ValueError,
           r"conv2d: kernel \(9x9 with dilation \(4, 4\)\) is larger than the padded input")
    raises("bias_shape", lambda: ops.conv2d(x, w, det(1, 5), groups=2), ValueError,
           r"conv2d: bias must have shape \(6,\) for weight.shape=\(6, 2, 3, 3\), got "
           r"bias.shape=\(5,\)")
    raises("dtype_mix", lambda: ops.conv2d(x.astype(np.float64), w, groups=2), TypeError,
           r"conv2d: weight must have the dtype of x \(float64\), got float32")
    raises("bias_dtype_mix", lambda: ops.conv2d(x, w, b.astype(np.float64), groups=2), TypeError,
           r"conv2d: bias must have the dtype of x \(float32\), got float64")
    raises("algo", lambda: ops.conv2d(x, w, groups=2, algo="winograd"), ValueError,
           r"conv2d: algo must be one of .*'winograd'")
    raises("x_H0", lambda: ops.conv2d(np.zeros((2, 4, 0, 6), np.float32), w, groups=2),
           ValueError, r"conv2d: .*x.shape=\(2, 4, 0, 6\)")
    raises("x_C0", lambda: ops.conv2d(np.zeros((2, 0, 7, 6), np.float32),
                                      np.zeros((6, 0, 3, 3), np.float32)),
           ValueError, r"conv2d: .*x.shape=\(2, 0, 7, 6\)")
    raises("w_K0", lambda: ops.conv2d(x, np.zeros((0, 2, 3, 3), np.float32), groups=2),
           ValueError, r"conv2d: .*weight.shape=\(0, 2, 3, 3\)")
    raises("w_R0", lambda: ops.conv2d(x, np.zeros((6, 2, 0, 3), np.float32), groups=2),
           ValueError, r"conv2d: .*weight.shape=\(6, 2, 0, 3\)")
    out.append(Same(op, "x_N0", lambda: ops.conv2d(x[:0], w, b, **geo),
                    lambda: R.conv2d(x[:0], w, b, **geo)))
    out.append(Same(op, "nan_x", lambda: ops.conv2d(with_nan(x, 30), w, b, **geo),
                    lambda: R.conv2d(with_nan(x, 30), w, b, **geo)))
    out.append(Same(op, "inf_w", lambda: ops.conv2d(x, with_nan(w, 4, -np.inf), b, **geo),
                    lambda: R.conv2d(x, with_nan(w, 4, -np.inf), b, **geo)))
    out.append(Same(op, "pad_same_even", lambda: ops.conv2d(x, det(3, 2, 4, 2, 4), padding="same"),
                    lambda: R.conv2d(x, det(3, 2, 4, 2, 4), padding="same")))
    out.append(Same(op, "f64", lambda: ops.conv2d(x.astype(np.float64), w.astype(np.float64),
                                                  b.astype(np.float64), **geo),
                    lambda: R.conv2d(x, w, b, **geo), rtol=1e-10, atol=1e-10))

    opb = "conv2d_backward"
    dy = mkb()["dy"]
    raises("dy_shape", lambda: ops.conv2d_backward(det(1, 2, 6, 4, 5), x, w, **geo), ValueError,
           r"conv2d_backward: dy must have the output's shape \(2, 6, 4, 4\), got "
           r"dy.shape=\(2, 6, 4, 5\) \(x.shape=\(2, 4, 7, 6\), weight.shape=\(6, 2, 3, 3\)\)",
           op=opb)
    raises("dy_dtype_mix", lambda: ops.conv2d_backward(dy.astype(np.float64), x, w, **geo),
           TypeError, r"conv2d_backward: dy must have the dtype of x", op=opb)
    raises("stride_zero", lambda: ops.conv2d_backward(dy, x, w, groups=2, stride=0), ValueError,
           r"conv2d_backward: stride must be >= 1", op=opb)
    raises("groups_zero", lambda: ops.conv2d_backward(dy, x, w, groups=0), ValueError,
           r"conv2d_backward: groups must be >= 1", op=opb)
    raises("algo", lambda: ops.conv2d_backward(dy, x, w, algo="fft", **geo), ValueError,
           r"conv2d_backward: algo must be one of", op=opb)
    out.append(Same(opb, "N0", lambda: ops.conv2d_backward(dy[:0], x[:0], w, **geo),
                    lambda: R.conv2d_backward(dy[:0], x[:0], w, **geo)))
    out.append(Same(opb, "only_dw", lambda: ops.conv2d_backward(dy, x, w, need_dx=False,
                                                               need_db=False, **geo),
                    lambda: R.conv2d_backward(dy, x, w, need_dx=False, need_db=False, **geo)))
    out.append(Same(opb, "nan_dy", lambda: ops.conv2d_backward(with_nan(dy, 3), x, w, **geo),
                    lambda: R.conv2d_backward(with_nan(dy, 3), x, w, **geo)))
    return out


# ---- pooling -----------------------------------------------------------------------------------

@group("pool")
def _pool_cases():
    from bigmodel import ops
    from bigmodel import reference as R
    out = []
    mg = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    ag = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True,
              count_include_pad=False)
    X = lambda: det(31, 2, 3, 7, 8)  # noqa: E731
    xs = (2, 3, 7, 8)

    s = Spec("max_pool2d", lambda x: ops.max_pool2d(x, **mg), lambda: dict(x=X()), {"x": "x"},
             ref=lambda x: R.max_pool2d(x, **mg), atol=0, rtol=0)
    out += [valid_call_case(s)] + s.cases()
    y_idx = R.max_pool2d(X(), **mg)

    def mkmb():
        return dict(dy=det(32, *y_idx[0].shape), indices=R.max_pool2d(X(), **mg)[1])

    int_bad = {"int32": BAD_DTYPES["int32"], "uint64": lambda a: np.asarray(a).astype(np.uint64),
               "float32": lambda a: np.asarray(a).astype(np.float32),
               "bool": BAD_DTYPES["bool"], "object": BAD_DTYPES["object"]}
    s = Spec("max_pool2d_backward", lambda dy, indices: ops.max_pool2d_backward(dy, indices, xs),
             mkmb, {"dy": "dy", "indices": "indices"},
             ref=lambda dy, indices: R.max_pool2d_backward(dy, indices, xs),
             bad_dtypes={"indices": int_bad})
    out += [valid_call_case(s)] + s.cases()
    s = Spec("avg_pool2d", lambda x: ops.avg_pool2d(x, **ag), lambda: dict(x=X()), {"x": "x"},
             ref=lambda x: R.avg_pool2d(x, **ag))
    out += [valid_call_case(s)] + s.cases()
    ys = R.avg_pool2d(X(), **ag).shape
    s = Spec("avg_pool2d_backward", lambda dy: ops.avg_pool2d_backward(dy, xs, **ag),
             lambda: dict(dy=det(33, *ys)), {"dy": "dy"},
             ref=lambda dy: R.avg_pool2d_backward(dy, xs, **ag))
    out += [valid_call_case(s)] + s.cases()
    s = Spec("global_avg_pool2d", lambda x: ops.global_avg_pool2d(x), lambda: dict(x=X()),
             {"x": "x"}, ref=R.global_avg_pool2d)
    out += [valid_call_case(s)] + s.cases()
    s = Spec("global_avg_pool2d_backward", lambda dy: ops.global_avg_pool2d_backward(dy, xs),
             lambda: dict(dy=det(34, 2, 3, 1, 1)), {"dy": "dy"},
             ref=lambda dy: R.global_avg_pool2d_backward(dy, xs), layouts=[])
    out += [valid_call_case(s)] + s.cases()

    x = X()
    for op, fn in (("max_pool2d", ops.max_pool2d), ("avg_pool2d", ops.avg_pool2d)):
        _param_cases(out, op, "kernel_size", lambda v, fn=fn: fn(x, v), PAIR_BAD)
        _param_cases(out, op, "stride", lambda v, fn=fn: fn(x, 2, v),
                     {k: v for k, v in PAIR_BAD.items() if k != "none"})
        _param_cases(out, op, "padding", lambda v, fn=fn: fn(x, 3, 1, v), PAD_BAD)
        out.append(Raises(op, "padding_half", lambda fn=fn: fn(x, 3, 1, 2), ValueError,
                          rf"{op}: padding \(2, 2\) must be at most half the kernel_size \(3, 3\)"))
        out.append(Raises(op, "kernel_too_big", lambda fn=fn: fn(x, 9), ValueError,
                          rf"{op}: kernel_size \(9, 9\) is larger than the padded input \(7x8\) "
                          rf"\(x.shape=\(2, 3, 7, 8\)"))
        out.append(Raises(op, "ceil_mode_str", lambda fn=fn: fn(x, 2, ceil_mode="yes"),
                          TypeError, rf"{op}: ceil_mode must be a bool"))
        out.append(Raises(op, "x_H0", lambda fn=fn: fn(np.zeros((2, 3, 0, 8), np.float32), 2),
                          ValueError, rf"{op}: .*x.shape=\(2, 3, 0, 8\)"))
        # a window covering the whole (padded) input: huge kernel and padding, small output
        out.append(Raises(op, "kernel_huge", lambda fn=fn: fn(x, 2 ** 40, padding=2 ** 39),
                          ValueError, rf"{op}: kernel_size must be <= 2147483647"))
    # the largest accepted window: its area (2**62) and divisor must not overflow
    k = 2 ** 31 - 1
    out.append(Same("avg_pool2d", "kernel_max", lambda: ops.avg_pool2d(x, k, padding=k // 2),
                    lambda: x.astype(np.float64).sum(axis=(2, 3), keepdims=True) / float(k) ** 2,
                    rtol=1e-5, atol=0))
    out.append(Same("avg_pool2d", "kernel_max_exclude_pad",
                    lambda: ops.avg_pool2d(x, k, padding=k // 2, count_include_pad=False),
                    lambda: x.astype(np.float64).mean(axis=(2, 3), keepdims=True)))
    out.append(Same("max_pool2d", "kernel_max", lambda: ops.max_pool2d(x, k, padding=k // 2),
                    lambda: (x.max(axis=(2, 3), keepdims=True),
                             x.reshape(2, 3, -1).argmax(-1).reshape(2, 3, 1, 1))))
    ref_mp = lambda x: R.max_pool2d(x, **mg)  # noqa: E731
    out.append(Same("max_pool2d", "N0", lambda: ops.max_pool2d(x[:0], **mg), lambda: ref_mp(x[:0])))
    out.append(Same("max_pool2d", "C0", lambda: ops.max_pool2d(x[:, :0], **mg),
                    lambda: ref_mp(x[:, :0])))
    out.append(Same("max_pool2d", "nan", lambda: ops.max_pool2d(with_nan(x, 17), **mg),
                    lambda: ref_mp(with_nan(x, 17)), atol=0, rtol=0))
    out.append(Same("max_pool2d", "inf", lambda: ops.max_pool2d(with_nan(x, 9, -np.inf), **mg),
                    lambda: ref_mp(with_nan(x, 9, -np.inf)), atol=0, rtol=0))
    out.append(Same("max_pool2d", "all_neg_inf", lambda: ops.max_pool2d(np.full(xs, -np.inf, np.float32), 2),
                    lambda: R.max_pool2d(np.full(xs, -np.inf), 2), atol=0, rtol=0))
    out.append(Same("max_pool2d", "no_indices", lambda: ops.max_pool2d(x, 2, return_indices=False),
                    lambda: R.max_pool2d(x, 2, return_indices=False)))
    out.append(Same("avg_pool2d", "nan", lambda: ops.avg_pool2d(with_nan(x, 17), **ag),
                    lambda: R.avg_pool2d(with_nan(x, 17), **ag)))
    out.append(Same("avg_pool2d", "N0", lambda: ops.avg_pool2d(x[:0], **ag),
                    lambda: R.avg_pool2d(x[:0], **ag)))
    out.append(Same("global_avg_pool2d", "inf", lambda: ops.global_avg_pool2d(with_nan(x, 3, np.inf)),
                    lambda: R.global_avg_pool2d(with_nan(x, 3, np.inf))))
    out.append(Raises("global_avg_pool2d", "H0", lambda: ops.global_avg_pool2d(np.zeros((2, 3, 0, 4), np.float32)),
                      ValueError, r"global_avg_pool2d: empty planes \(x.shape=\(2, 3, 0, 4\)\)"))
    out.append(Same("global_avg_pool2d", "N0", lambda: ops.global_avg_pool2d(x[:0]),
                    lambda: R.global_avg_pool2d(x[:0])))

    op = "max_pool2d_backward"
    dy, idx = mkmb()["dy"], mkmb()["indices"]

    def raises(cid, call, exc, match, op=op):
        out.append(Raises(op, cid, call, exc, match))

    raises("index_past_plane", lambda: ops.max_pool2d_backward(dy, with_nan(idx, 5, 56), xs),
           ValueError, r"max_pool2d_backward: indices must lie in \[0, 56\): index 56 outside")
    raises("index_negative", lambda: ops.max_pool2d_backward(dy, with_nan(idx, 0, -1), xs),
           ValueError, r"max_pool2d_backward: indices must lie in \[0, 56\): index -1 outside")
    raises("indices_shape", lambda: ops.max_pool2d_backward(dy, idx[:, :, :1], xs), ValueError,
           r"max_pool2d_backward: dy.shape=\(2, 3, 4, 5\) and indices.shape=\(2, 3, 1, 5\)")
    raises("x_shape_N", lambda: ops.max_pool2d_backward(dy, idx, (3, 3, 7, 8)), ValueError,
           r"max_pool2d_backward: .*x_shape=\(3, 3, 7, 8\)")
    for cid, v in {"3d": (2, 3, 7), "negative": (2, 3, -7, 8), "float": (2, 3, 7.0, 8),
                   "none": None, "str": "2378"}.items():
        for op2, call in (("max_pool2d_backward", lambda v=v: ops.max_pool2d_backward(dy, idx, v)),
                          ("avg_pool2d_backward", lambda v=v: ops.avg_pool2d_backward(
                              det(33, *ys), v, **ag)),
                          ("global_avg_pool2d_backward", lambda v=v: ops.global_avg_pool2d_backward(
                              det(34, 2, 3, 1, 1), v))):
            out.append(Raises(op2, f"x_shape_{cid}", call, (ValueError, TypeError),
                              rf"{op2}: x_shape must be"))
    out.append(Raises("max_pool2d_backward", "x_shape_huge",
                      lambda: ops.max_pool2d_backward(dy, idx, (2, 3, 2 ** 40, 2 ** 40)),
                      (ValueError, MemoryError), r"max_pool2d_backward: .*x_shape"))
    out.append(Same("max_pool2d_backward", "x_shape_numpy_ints",
                    lambda: ops.max_pool2d_backward(dy, idx, tuple(np.array(xs))),
                    lambda: R.max_pool2d_backward(dy, idx, xs)))
    out.append(Same("max_pool2d_backward", "N0",
                    lambda: ops.max_pool2d_backward(dy[:0], idx[:0], (0, 3, 7, 8)),
                    lambda: np.zeros((0, 3, 7, 8))))
    out.append(Same("max_pool2d_backward", "nan_dy",
                    lambda: ops.max_pool2d_backward(with_nan(dy, 2), idx, xs),
                    lambda: R.max_pool2d_backward(with_nan(dy, 2), idx, xs)))
    out.append(Raises("avg_pool2d_backward", "dy_shape",
                      lambda: ops.avg_pool2d_backward(det(1, 2, 3, 4, 4), xs, **ag), ValueError,
                      r"avg_pool2d_backward: dy must have shape \(2, 3, 4, 7\) for "
                      r"x_shape=\(2, 3, 7, 8\), got dy.shape=\(2, 3, 4, 4\)"))
    out.append(Raises("avg_pool2d_backward", "stride_zero",
                      lambda: ops.avg_pool2d_backward(det(33, *ys), xs, 2, 0), ValueError,
                      r"avg_pool2d_backward: stride must be >= 1"))
    out.append(Raises("global_avg_pool2d_backward", "dy_shape",
                      lambda: ops.global_avg_pool2d_backward(det(1, 2, 3, 2, 1), xs), ValueError,
                      r"global_avg_pool2d_backward: dy must have shape \(2, 3, 1, 1\).*"
                      r"dy.shape=\(2, 3, 2, 1\)"))
    return out


INT_BAD = {"float32": lambda a: np.asarray(a).astype(np.float32),
           "float16": lambda a: np.asarray(a).astype(np.float16),
           "bool": lambda a: np.asarray(a) > 0, "object": lambda a: np.asarray(a).astype(object),
           "complex64": lambda a: np.asarray(a).astype(np.complex64)}


# ---- RNN family --------------------------------------------------------------------------------

@group("rnn")
def _rnn_cases():
    from bigmodel import ops
    from bigmodel import reference as R
    out = []
    B, T, I, H = 2, 5, 3, 4
    G = {"rnn": 1, "lstm": 4, "gru": 3}

    def weights(mode, seed, bidirectional=True, layers=1):
        ws = []
        for k in range(layers * (2 if bidirectional else 1)):
            In = I if k < (2 if bidirectional else 1) else (2 if bidirectional else 1) * H
            ws.append((det(seed + 4 * k, G[mode] * H, In, scale=0.5),
                       det(seed + 4 * k + 1, G[mode] * H, H, scale=0.5),
                       det(seed + 4 * k + 2, G[mode] * H, scale=0.5),
                       det(seed + 4 * k + 3, G[mode] * H, scale=0.5)))
        return ws

    def mk(mode):
        def make():
            w = weights(mode, 100)
            d = dict(x=det(41, B, T, I), w_ih=w[0][0], w_hh=w[0][1], b_ih=w[0][2], b_hh=w[0][3],
                     h0=det(42, 2, B, H), lengths=np.array([5, 3]))
            if mode == "lstm":
                d["c0"] = det(43, 2, B, H)
            return d
        return make

    names = {"x": "x", "w_ih": "w_ih", "w_hh": "w_hh", "b_ih": "b_ih", "b_hh": "b_hh", "h0": "h0",
             "lengths": "lengths"}
    for mode in ("rnn", "lstm", "gru"):
        def fn(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, c0=None, mode=mode):
            ws = [(w_ih, w_hh, b_ih, b_hh)] + weights(mode, 100)[1:]
            kw = dict(lengths=lengths, bidirectional=True)
            if mode == "lstm":
                o, hn, cn, st = ops.lstm(x, ws, h0, c0, **kw)
                return o, hn, cn
            if mode == "rnn":
                kw["nonlinearity"] = "relu"
            return getattr(ops, mode)(x, ws, h0, **kw)[:2]

        def ref(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, c0=None, mode=mode):
            ws = [(w_ih, w_hh, b_ih, b_hh)] + weights(mode, 100)[1:]
            kw = dict(lengths=lengths, bidirectional=True)
            if mode == "lstm":
                return R.lstm(x, ws, h0, c0, **kw)[:3]
            if mode == "rnn":
                kw["nonlinearity"] = "relu"
            return getattr(R, mode)(x, ws, h0, **kw)[:2]

        nm = dict(names, **({"c0": "c0"} if mode == "lstm" else {}))
        s = Spec(mode, fn, mk(mode), nm, ref=ref,
                 bad_dtypes={"lengths": INT_BAD}, list_arg=[k for k in nm if k != "lengths"],
                 ndim=[k for k in nm if k != "lengths"] if mode != "rnn" else list(nm))
        out += [valid_call_case(s)] + s.cases()

    # backward: grad_output, grad_h_n (, grad_c_n) as unusual views and bad arrays
    def mkb():
        return dict(grad_output=det(44, B, T, 2 * H), grad_h_n=det(45, 2, B, H),
                    grad_c_n=det(46, 2, B, H))

    def fwd(mode, x=None):
        x = det(41, B, T, I) if x is None else x
        if mode == "lstm":
            return ops.lstm(x, weights("lstm", 100), lengths=np.array([5, 3]), bidirectional=True)
        return getattr(ops, mode)(x, weights(mode, 100), lengths=np.array([5, 3]),
                                  bidirectional=True)

    def rfwd(mode):
        if mode == "lstm":
            return R.lstm(det(41, B, T, I), weights("lstm", 100), lengths=np.array([5, 3]),
                          bidirectional=True)
        return getattr(R, mode)(det(41, B, T, I), weights(mode, 100), lengths=np.array([5, 3]),
                                bidirectional=True)

    s = Spec("lstm_backward",
             lambda grad_output, grad_h_n, grad_c_n: ops.lstm_backward(
                 fwd("lstm")[3], grad_output, grad_h_n, grad_c_n), mkb,
             {"grad_output": "grad_output", "grad_h_n": "grad_h_n", "grad_c_n": "grad_c_n"},
             ref=lambda grad_output, grad_h_n, grad_c_n: R.lstm_backward(
                 rfwd("lstm")[3], grad_output, grad_h_n, grad_c_n))
    out += [valid_call_case(s)] + s.cases()
    for mode in ("rnn", "gru"):
        s = Spec(f"{mode}_backward",
                 lambda grad_output, grad_h_n, mode=mode: getattr(ops, f"{mode}_backward")(
                     fwd(mode)[2], grad_output, grad_h_n),
                 lambda: {k: v for k, v in mkb().items() if k != "grad_c_n"},
                 {"grad_output": "grad_output", "grad_h_n": "grad_h_n"},
                 ref=lambda grad_output, grad_h_n, mode=mode: getattr(R, f"{mode}_backward")(
                     rfwd(mode)[2], grad_output, grad_h_n), dtypes=[], list_arg=[], cupy=[])
        out += [valid_call_case(s)] + s.cases()

    # cells
    for mode in ("rnn", "lstm", "gru"):
        def mkc(mode=mode):
            d = dict(x=det(51, B, I), h=det(52, B, H), w_ih=det(53, G[mode] * H, I, scale=.5),
                     w_hh=det(54, G[mode] * H, H, scale=.5), b_ih=det(55, G[mode] * H),
                     b_hh=det(56, G[mode] * H))
            if mode == "lstm":
                d["c"] = det(57, B, H)
            return d
        cell = getattr(ops, f"{mode}_cell")
        rcell = getattr(R, f"{mode}_cell")
        nm = {k: k for k in mkc()}
        s = Spec(f"{mode}_cell", lambda cell=cell, **kw: cell(**kw), mkc, nm,
                 ref=lambda rcell=rcell, **kw: rcell(**kw))
        out += [valid_call_case(s)] + s.cases()
        out.append(Same(f"{mode}_cell", "h_none",
                        lambda cell=cell, mkc=mkc, mode=mode: cell(**dict(mkc(), h=None, **(
                            {"c": None} if mode == "lstm" else {}))),
                        lambda rcell=rcell, mkc=mkc, mode=mode: rcell(**dict(
                            mkc(), h=np.zeros((B, H)), **({"c": np.zeros((B, H))} if mode == "lstm"
                                                          else {})))))
        out.append(Raises(f"{mode}_cell", "x_3d", lambda cell=cell, mkc=mkc: cell(**dict(
            mkc(), x=det(1, B, 1, I))), ValueError, rf"{mode}_cell: x must be 2-D .*x.shape=\(2, 1, 3\)"))
        out.append(Raises(f"{mode}_cell", "h_shape", lambda cell=cell, mkc=mkc: cell(**dict(
            mkc(), h=det(1, B, H + 1))), ValueError, rf"{mode}_cell: h.shape=\(2, 5\), expected \(2, 4\)"))
        gh = G[mode] * H
        out.append(Raises(f"{mode}_cell", "w_hh_1d", lambda cell=cell, mkc=mkc, gh=gh: cell(**dict(
            mkc(), w_hh=det(1, gh))), ValueError,
            rf"{mode}_cell: w_hh must be a 2-D array \(G\*H, H\), got w_hh.shape=\({gh},\)"))
        out.append(Raises(f"{mode}_cell", "w_ih_shape", lambda cell=cell, mkc=mkc, gh=gh: cell(**dict(
            mkc(), w_ih=det(1, gh, I + 1))), ValueError,
            rf"{mode}_cell: .*w_ih.*shape=\({gh}, 4\), expected \({gh}, 3\)"))
        out.append(Same(f"{mode}_cell", "nan_x", lambda cell=cell, mkc=mkc: cell(**dict(
            mkc(), x=with_nan(mkc()["x"], 1))), lambda rcell=rcell, mkc=mkc: rcell(**dict(
                mkc(), x=with_nan(mkc()["x"], 1)))))
    out.append(Raises("lstm_cell", "c_shape", lambda: ops.lstm_cell(
        det(51, B, I), None, det(1, 3, H), det(53, 4 * H, I), det(54, 4 * H, H)), ValueError,
        r"lstm_cell: c.shape=\(3, 4\), expected \(2, 4\)"))
    out.append(Raises("rnn_cell", "nonlinearity", lambda: ops.rnn_cell(
        det(51, B, I), None, det(53, H, I), det(54, H, H), nonlinearity="sigmoid"), ValueError,
        r"rnn_cell: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"))

    # sequences: specific bad arguments
    x = det(41, B, T, I)
    wl = weights("lstm", 100, bidirectional=False)
    op = "lstm"

    def raises(cid, call, exc, match, op=op):
        out.append(Raises(op, cid, call, exc, match))

    raises("weights_array", lambda: ops.lstm(x, wl[0][0]), TypeError,
           r"lstm: weights must be a non-empty list of \(w_ih, w_hh, b_ih, b_hh\) tuples, got ndarray")
    raises("weights_empty", lambda: ops.lstm(x, []), TypeError, r"lstm: weights must be a non-empty list")
    raises("weights_none", lambda: ops.lstm(x, None), TypeError, r"lstm: weights must be a non-empty list")
    raises("weights_tuple3", lambda: ops.lstm(x, [wl[0][:3]]), TypeError,
           r"lstm: weights\[0\] must be a tuple \(w_ih, w_hh\[, b_ih, b_hh\]\)")
    raises("weights_second_bad", lambda: ops.lstm(x, [wl[0], "w"], bidirectional=True), TypeError,
           r"lstm: weights\[1\] must be a tuple")
    raises("bidirectional_odd", lambda: ops.lstm(x, wl, bidirectional=True), ValueError,
           r"lstm: bidirectional needs 2 weight tuples per layer, got 1")
    raises("w_hh_1d", lambda: ops.lstm(x, [(wl[0][0], wl[0][2])]), ValueError,
           r"lstm: weights\[0\]\[1\] \(w_hh\) must be a 2-D array")
    raises("hidden_0", lambda: ops.lstm(x, [(np.zeros((0, I), np.float32), np.zeros((0, 0), np.float32))]),
           ValueError, r"lstm: hidden size must be >= 1, w_hh.shape=\(0, 0\)")
    raises("w_ih_layer1", lambda: ops.lstm(x, wl + [(det(1, 16, 3), det(2, 16, 4))]), ValueError,
           r"lstm: weights\[1\]\[0\] \(w_ih, layer 1\).shape=\(16, 3\), expected \(16, 4\)")
    raises("w_dtype_mix", lambda: ops.lstm(x.astype(np.float64), wl), TypeError,
           r"lstm: weights\[0\]\[0\] \(w_ih, layer 0\) must have dtype float64 like x, got float32")
    raises("x_T0", lambda: ops.lstm(x[:, :0], wl), ValueError, r"lstm: x must have at least one .*x.shape=\(2, 0, 3\)")
    raises("x_B0", lambda: ops.lstm(x[:0], wl), ValueError, r"lstm: x must have at least one .*x.shape=\(0, 5, 3\)")
    raises("x_I0", lambda: ops.lstm(x[:, :, :0], [(np.zeros((16, 0), np.float32), wl[0][1])]),
           ValueError, r"lstm: x must have at least one .*x.shape=\(2, 5, 0\)")
    raises("x_2d", lambda: ops.lstm(x[0], wl), ValueError, r"lstm: x must be 3-D .*x.shape=\(5, 3\)")
    raises("lengths_past_T", lambda: ops.lstm(x, wl, lengths=np.array([6, 1])), ValueError,
           r"lstm: lengths must lie in \[0, 5\] \(time steps of x\), got min 1, max 6")
    raises("lengths_negative", lambda: ops.lstm(x, wl, lengths=np.array([-1, 1])), ValueError,
           r"lstm: lengths must lie in \[0, 5\]")
    raises("lengths_shape", lambda: ops.lstm(x, wl, lengths=np.array([5, 3, 1])), ValueError,
           r"lstm: lengths.shape=\(3,\), expected \(2,\)")
    raises("lengths_str", lambda: ops.lstm(x, wl, lengths="55"), TypeError, r"lstm: lengths must be integers")
    raises("lengths_huge", lambda: ops.lstm(x, wl, lengths=np.array([2 ** 63 - 1, 1], np.uint64)),
           ValueError, r"lstm: lengths must lie in \[0, 5\]")
    raises("h0_shape", lambda: ops.lstm(x, wl, det(1, 2, B, H)), ValueError,
           r"lstm: h0.shape=\(2, 2, 4\), expected \(1, 2, 4\)")
    raises("c0_dtype", lambda: ops.lstm(x, wl, None, np.zeros((1, B, H))), TypeError,
           r"lstm: c0 must have dtype float32 like x, got float64")
    raises("precision", lambda: ops.lstm(x, wl, precision="fp16"), ValueError,
           r"lstm: precision must be 'native' or 'bf16', got 'fp16'")
    raises("precision_bf16_f64", lambda: ops.lstm(x.astype(np.float64), [tuple(w.astype(np.float64) for w in wl[0])],
                                                  precision="bf16"), TypeError,
           r"lstm: precision='bf16' needs float32 x, got float64")
    raises("batch_first_str", lambda: ops.lstm(x, wl, batch_first="yes"), TypeError,
           r"lstm: batch_first must be a bool")
    raises("bidirectional_int", lambda: ops.lstm(x, wl, bidirectional=2), TypeError,
           r"lstm: bidirectional must be a bool")
    raises("nonlinearity", lambda: ops.rnn(x, weights("rnn", 1, False), nonlinearity="gelu"), ValueError,
           r"rnn: nonlinearity must be 'tanh' or 'relu', got 'gelu'", op="rnn")
    out.append(Same(op, "lengths_all_zero", lambda: ops.lstm(x, wl, lengths=np.zeros(B, int))[:3],
                    lambda: R.lstm(x, wl, lengths=np.zeros(B, int))[:3]))
    out.append(Same(op, "time_major", lambda: ops.lstm(x.transpose(1, 0, 2), wl, batch_first=False)[:3],
                    lambda: R.lstm(x.transpose(1, 0, 2), wl, batch_first=False)[:3]))
    out.append(Same(op, "nan_x", lambda: ops.lstm(with_nan(x, 4), wl, lengths=np.array([5, 3]))[:3],
                    lambda: R.lstm(with_nan(x, 4), wl, lengths=np.array([5, 3]))[:3]))
    out.append(Same(op, "inf_h0", lambda: ops.lstm(x, wl, with_nan(np.zeros((1, B, H), np.float32), 0, np.inf))[:3],
                    lambda: R.lstm(x, wl, with_nan(np.zeros((1, B, H)), 0, np.inf))[:3]))
    out.append(Same(op, "no_biases", lambda: ops.lstm(x, [wl[0][:2]])[:3],
                    lambda: R.lstm(x, [wl[0][:2]])[:3]))
    out.append(Same(op, "weights_views", lambda: ops.lstm(x, [(negstride(wl[0][0]), fortran(wl[0][1]),
                                                               strided(wl[0][2]), misaligned(wl[0][3]))])[:3],
                    lambda: R.lstm(x, wl)[:3]))
    out.append(Same(op, "two_layers", lambda: ops.lstm(x, weights("lstm", 7, True, 2), bidirectional=True)[:3],
                    lambda: R.lstm(x, weights("lstm", 7, True, 2), bidirectional=True)[:3]))
    if cupy_available():
        raises("weights_on_gpu", lambda: ops.lstm(x, [(cupy_array(wl[0][0]), wl[0][1])]), ValueError,
               r"lstm: arrays are on different devices.*w_ih.* on GPU")

    opb = "lstm_backward"
    st = lambda: fwd("lstm")[3]  # noqa: E731
    raises("state_none", lambda: ops.lstm_backward(None, det(44, B, T, 2 * H)), TypeError,
           r"lstm_backward: state must be the RNNState returned by the forward call \(with "
           r"training=True\), got NoneType", op=opb)
    raises("state_inference", lambda: ops.lstm_backward(ops.lstm(x, wl, training=False)[3]), TypeError,
           r"lstm_backward: state must be the RNNState", op=opb)
    raises("state_from_gru", lambda: ops.lstm_backward(fwd("gru")[2]), ValueError,
           r"lstm_backward: state comes from gru, not from a matching forward", op=opb)
    raises("grad_output_shape", lambda: ops.lstm_backward(st(), det(1, B, T, H)), ValueError,
           r"lstm_backward: grad_output.shape=\(2, 5, 4\), expected \(2, 5, 8\)", op=opb)
    raises("grad_output_dtype", lambda: ops.lstm_backward(st(), np.zeros((B, T, 2 * H))), TypeError,
           r"lstm_backward: grad_output must have dtype float32 like x, got float64", op=opb)
    out.append(Same(opb, "all_none", lambda: ops.lstm_backward(st()),
                    lambda: R.lstm_backward(rfwd("lstm")[3])))
    if cupy_available():
        raises("grad_on_gpu", lambda: ops.lstm_backward(st(), cupy_array(det(44, B, T, 2 * H))),
               ValueError, r"lstm_backward: arrays are on different devices.*grad_output on GPU", op=opb)
    return out


# ---- attention ---------------------------------------------------------------------------------

@group("attention")
def _attention_cases():
    from bigmodel import ops
    from bigmodel import reference as R
    out = []

    def mask():
        m = np.random.default_rng(61).random((1, 1, 5, 6)) > 0.3
        m[..., 2, :] = False  # a fully hidden row
        return m

    def mk():
        return dict(q=det(62, 2, 2, 5, 4), k=det(63, 2, 2, 6, 4), v=det(64, 2, 2, 6, 3), mask=mask())

    names = {"q": "q", "k": "k", "v": "v", "mask": "mask"}
    mask_bad = {n: BAD_DTYPES[n] for n in ("int32", "int64", "object", "complex64")}
    mask_bad["uint8"] = lambda a: np.asarray(a).astype(np.uint8)
    s = Spec("attention", lambda q, k, v, mask: ops.attention(q, k, v, mask=mask, causal=True,
                                                               return_lse=True),
             mk, names, ref=lambda q, k, v, mask: R.attention(q, k, v, mask=mask, causal=True,
                                                            return_lse=True),
             bad_dtypes={"mask": mask_bad}, ndim=["q", "k", "v"])
    out += [valid_call_case(s)] + s.cases()

    def mkb():
        d = mk()
        o, lse = R.attention(d["q"], d["k"], d["v"], mask=d["mask"], return_lse=True)
        d.update(do=det(65, 2, 2, 5, 3), out=o.astype(np.float32), lse=lse.astype(np.float32))
        return d

    nb = dict(names, do="do", out="out", lse="lse")
    s = Spec("attention_backward",
             lambda do, q, k, v, out, lse, mask: ops.attention_backward(do, q, k, v, out, lse, mask=mask),
             mkb, nb,
             ref=lambda do, q, k, v, out, lse, mask: R.attention_backward(do, q, k, v, out, lse, mask=mask),
             bad_dtypes={"mask": mask_bad}, ndim=["q", "k", "v", "do", "out", "lse"], rtol=1e-3,
             atol=1e-4)
    out += [valid_call_case(s)] + s.cases()

    q, k, v, m = mk()["q"], mk()["k"], mk()["v"], mask()
    op = "attention"

    def raises(cid, call, exc, match, op=op):
        out.append(Raises(op, cid, call, exc, match))

    def same(cid, call, ref, op=op, **kw):
        out.append(Same(op, cid, call, ref, **kw))

    raises("k_D", lambda: ops.attention(q, det(1, 2, 2, 6, 5), v), ValueError,
           r"attention: q, k, v must be .*q.shape=\(2, 2, 5, 4\), k.shape=\(2, 2, 6, 5\), "
           r"v.shape=\(2, 2, 6, 3\)")
    raises("v_Sk", lambda: ops.attention(q, k, det(1, 2, 2, 7, 3)), ValueError,
           r"attention: q, k, v must be .*v.shape=\(2, 2, 7, 3\)")
    raises("k_B", lambda: ops.attention(q, det(1, 1, 2, 6, 4), v), ValueError,
           r"attention: q, k, v must be .*k.shape=\(1, 2, 6, 4\)")
    raises("dtype_mix", lambda: ops.attention(q, k.astype(np.float64), v), TypeError,
           r"attention: k has dtype float64 but q has float32")
    raises("mask_shape", lambda: ops.attention(q, k, v, mask=np.ones((5, 5), bool)), ValueError,
           r"attention: mask.shape=\(5, 5\) does not broadcast to \(B, H, Sq, Sk\)=\(2, 2, 5, 6\)")
    raises("mask_5d", lambda: ops.attention(q, k, v, mask=np.ones((1, 1, 1, 5, 6), bool)), ValueError,
           r"attention: mask.shape=\(1, 1, 1, 5, 6\) has more than 4 dimensions")
    raises("causal_str", lambda: ops.attention(q, k, v, causal="yes"), TypeError,
           r"attention: causal must be a bool, got str")
    raises("return_lse_int", lambda: ops.attention(q, k, v, return_lse=1), TypeError,
           r"attention: return_lse must be a bool")
    raises("scale_str", lambda: ops.attention(q, k, v, scale="0.5"), TypeError,
           r"attention: scale must be a real number, got str")
    raises("scale_bool", lambda: ops.attention(q, k, v, scale=True), TypeError,
           r"attention: scale must be a real number, got bool")
    for cid, shp in {"B0": ((0, 2, 5, 4), (0, 2, 6, 4), (0, 2, 6, 3)),
                     "Sq0": ((2, 2, 0, 4), (2, 2, 6, 4), (2, 2, 6, 3)),
                     "Sk0": ((2, 2, 5, 4), (2, 2, 0, 4), (2, 2, 0, 3)),
                     "D0": ((2, 2, 5, 0), (2, 2, 6, 0), (2, 2, 6, 3)),
                     "Dv0": ((2, 2, 5, 4), (2, 2, 6, 4), (2, 2, 6, 0))}.items():
        mkq = lambda shp=shp: (det(1, *shp[0]), det(2, *shp[1]), det(3, *shp[2]))  # noqa: E731
        same(f"zero_{cid}", lambda mkq=mkq: ops.attention(*mkq(), return_lse=True),
             lambda mkq=mkq: R.attention(*mkq(), return_lse=True))
        same(f"zero_{cid}_backward", lambda mkq=mkq: _attn_bwd(ops, R, mkq(), False),
             lambda mkq=mkq: _attn_bwd(R, R, mkq(), False), op="attention_backward")
    same("causal_Sq_gt_Sk", lambda: ops.attention(det(1, 1, 2, 7, 4), k[:1], v[:1], causal=True),
         lambda: R.attention(det(1, 1, 2, 7, 4), k[:1], v[:1], causal=True))
    same("all_hidden", lambda: ops.attention(q, k, v, mask=np.zeros((5, 6), bool), return_lse=True),
         lambda: R.attention(q, k, v, mask=np.zeros((5, 6), bool), return_lse=True))
    same("additive_mask_inf", lambda: ops.attention(q, k, v, mask=np.where(m, 0, -np.inf).astype(np.float32)),
         lambda: R.attention(q, k, v, mask=np.where(m, 0, -np.inf)))
    same("additive_mask_f16", lambda: ops.attention(q, k, v, mask=det(9, 5, 6, dtype=np.float16)),
         lambda: R.attention(q, k, v, mask=det(9, 5, 6, dtype=np.float16).astype(np.float32)))
    same("additive_mask_nan", lambda: ops.attention(q, k, v, mask=with_nan(np.zeros((5, 6), np.float32), 7)),
         lambda: R.attention(q, k, v, mask=with_nan(np.zeros((5, 6)), 7)))
    same("nan_q", lambda: ops.attention(with_nan(q, 6), k, v), lambda: R.attention(with_nan(q, 6), k, v))
    same("nan_v", lambda: ops.attention(q, k, with_nan(v, 6)), lambda: R.attention(q, k, with_nan(v, 6)))
    same("scale_nan", lambda: ops.attention(q, k, v, scale=float("nan")),
         lambda: R.attention(q, k, v, scale=float("nan")))
    same("scale_zero", lambda: ops.attention(q, k, v, scale=0.0), lambda: R.attention(q, k, v, scale=0.0))
    same("mask_negstride_bcast", lambda: ops.attention(q, k, v, mask=np.broadcast_to(negstride(m[0, 0], 1), (2, 2, 5, 6))),
         lambda: R.attention(q, k, v, mask=m[0, 0]))
    same("qkv_negstride_axis2", lambda: ops.attention(negstride(q, 2), negstride(k, 2), negstride(v, 2)),
         lambda: R.attention(q, k, v))
    same("qkv_transposed_heads", lambda: ops.attention(*(np.array(t.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
                                                         for t in (q, k, v))),
         lambda: R.attention(q, k, v))
    same("f64", lambda: ops.attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), mask=m),
         lambda: R.attention(q, k, v, mask=m), rtol=1e-10, atol=1e-12)

    opb = "attention_backward"
    d = mkb()
    args = lambda **kw: dict(dict(do=d["do"], q=q, k=k, v=v, out=d["out"], lse=d["lse"]), **kw)  # noqa: E731
    raises("do_shape", lambda: ops.attention_backward(**args(do=det(1, 2, 2, 5, 4))), ValueError,
           r"attention_backward: do.shape=\(2, 2, 5, 4\), expected \(2, 2, 5, 3\)", op=opb)
    raises("lse_shape", lambda: ops.attention_backward(**args(lse=det(1, 2, 2, 6))), ValueError,
           r"attention_backward: lse.shape=\(2, 2, 6\), expected \(2, 2, 5\)", op=opb)
    raises("out_dtype", lambda: ops.attention_backward(**args(out=d["out"].astype(np.float64))), TypeError,
           r"attention_backward: out has dtype float64 but q has float32", op=opb)
    raises("causal_str", lambda: ops.attention_backward(**args(), causal="no"), TypeError,
           r"attention_backward: causal must be a bool", op=opb)
    same("lse_inf_rows", lambda: _attn_bwd(ops, R, (q, k, v), True, np.zeros((5, 6), bool)),
         lambda: _attn_bwd(R, R, (q, k, v), True, np.zeros((5, 6), bool)), op=opb)
    return out


def _attn_bwd(lib, R, qkv, causal, mask=None):
    q, k, v = qkv
    o, lse = R.attention(q, k, v, causal=causal, mask=mask, return_lse=True)
    do = np.ones(o.shape, q.dtype)
    return lib.attention_backward(do, q, k, v, o.astype(q.dtype), lse.astype(q.dtype),
                                  causal=causal, mask=mask)


# ---- softmax, cross-entropy, layer norm --------------------------------------------------------

@group("nn_ops")
def _nn_cases():
    from bigmodel import ops
    from bigmodel import reference as R
    out = []
    X = lambda: det(71, 3, 4, 5)  # noqa: E731
    for name in ("softmax", "log_softmax"):
        fn, rf = getattr(ops, name), getattr(R, name)
        s = Spec(name, lambda x, fn=fn: fn(x, axis=1), lambda: dict(x=X()), {"x": "x"},
                 ref=lambda x, rf=rf: rf(x, axis=1), ndim=[])
        out += [valid_call_case(s)] + s.cases()
        fb, rb = getattr(ops, name + "_backward"), getattr(R, name + "_backward")
        s = Spec(name + "_backward", lambda dy, y, fb=fb: fb(dy, y, axis=1),
                 lambda name=name: dict(dy=det(72, 3, 4, 5), y=getattr(R, name)(X(), axis=1).astype(np.float32)),
                 {"dy": "dy", "y": "y"}, ref=lambda dy, y, rb=rb: rb(dy, y, axis=1))
        out += [valid_call_case(s)] + s.cases()
        x = X()
        for cid, (v, exc) in {"float": (1.0, TypeError), "bool": (True, TypeError),
                              "none": (None, TypeError), "str": ("1", TypeError),
                              "past": (3, ValueError), "neg_past": (-4, ValueError),
                              "huge": (2 ** 63, ValueError)}.items():
            out.append(Raises(name, f"axis_{cid}", lambda v=v, fn=fn: fn(x, axis=v), exc,
                              rf"{name}: axis\b.*" + ("x.shape=\\(3, 4, 5\\)" if exc is ValueError else "")))
        out.append(Raises(name, "x_0d", lambda fn=fn: fn(np.ones((), np.float32)),
                          ValueError, rf"{name}: axis -1 is out of range for x.shape=\(\)"))
        for cid, shp in {"rows0": (0, 5), "cols0": (3, 0), "mid0": (3, 0, 5)}.items():
            out.append(Same(name, f"zero_{cid}", lambda shp=shp, fn=fn: fn(np.ones(shp, np.float32)),
                            lambda shp=shp: np.ones(shp)))
            out.append(Same(name + "_backward", f"zero_{cid}",
                            lambda shp=shp, fb=fb: fb(np.ones(shp, np.float32), np.ones(shp, np.float32)),
                            lambda shp=shp: np.ones(shp)))
        for cid, val in {"nan": np.nan, "pos_inf": np.inf, "neg_inf": -np.inf}.items():
            out.append(Same(name, cid, lambda val=val, fn=fn: fn(with_nan(x, 6, val), axis=1),
                            lambda val=val, rf=rf: rf(with_nan(x, 6, val), axis=1)))
        out.append(Same(name, "row_all_neg_inf", lambda fn=fn: fn(np.full((2, 3), -np.inf, np.float32)),
                        lambda rf=rf: rf(np.full((2, 3), -np.inf))))
        out.append(Same(name, "f64", lambda fn=fn: fn(x.astype(np.float64), axis=0),
                        lambda rf=rf: rf(x, axis=0), rtol=1e-12, atol=1e-14))
        out.append(Raises(name + "_backward", "shape_mismatch", lambda fb=fb: fb(det(1, 3, 4, 4), x),
                          ValueError, rf"{name}_backward: dy.shape=\(3, 4, 4\) must equal "
                                      rf"y.shape=\(3, 4, 5\)"))
        out.append(Raises(name + "_backward", "dtype_mismatch",
                          lambda fb=fb: fb(x.astype(np.float64), x), TypeError,
                          rf"{name}_backward: dy has dtype float64 but y has float32"))

    # cross-entropy: logits (N, C, d1), targets (N, d1)
    def mkce():
        t = np.random.default_rng(73).integers(0, 5, (3, 4))
        t[0, 1] = -100
        return dict(logits=det(74, 3, 5, 4), targets=t)

    tgt_bad = dict(INT_BAD)
    ce_kw = dict(label_smoothing=0.1)
    for red in ("mean", "sum", "none"):
        s = Spec("cross_entropy", lambda logits, targets, red=red: ops.cross_entropy(
                     logits, targets, reduction=red, **ce_kw), mkce,
                 {"logits": "logits", "targets": "targets"},
                 ref=lambda logits, targets, red=red: R.cross_entropy(logits, targets, reduction=red, **ce_kw),
                 bad_dtypes={"targets": tgt_bad}, prefix=f"{red}_",
                 **({} if red == "mean" else dict(dtypes=[], list_arg=[], ndim=[], cupy=[])))
        out += [valid_call_case(s)] + s.cases()
        g = (lambda: np.float32(0.7)) if red != "none" else (lambda: det(75, 3, 4))
        s = Spec("cross_entropy_backward", lambda logits, targets, red=red, g=g: ops.cross_entropy_backward(
                     g(), logits, targets, reduction=red, **ce_kw), mkce,
                 {"logits": "logits", "targets": "targets"},
                 ref=lambda logits, targets, red=red, g=g: R.cross_entropy_backward(
                     g(), logits, targets, reduction=red, **ce_kw),
                 bad_dtypes={"targets": tgt_bad}, prefix=f"{red}_",
                 **({} if red == "none" else dict(dtypes=[], list_arg=[], ndim=[], cupy=[])))
        out += [valid_call_case(s)] + s.cases()
    lg, tg = mkce()["logits"][:, :, 0], mkce()["targets"][:, 0]
    op = "cross_entropy"

    def raises(cid, call, exc, match, op=op):
        out.append(Raises(op, cid, call, exc, match))

    def same(cid, call, ref, op=op, **kw):
        out.append(Same(op, cid, call, ref, **kw))

    raises("target_eq_C", lambda: ops.cross_entropy(lg, np.array([0, 5, 1])), ValueError,
           r"cross_entropy: targets must be in \[0, 5\) or ignore_index=-100; got 5")
    raises("target_negative", lambda: ops.cross_entropy(lg, np.array([0, -1, 1])), ValueError,
           r"cross_entropy: targets must be in \[0, 5\) or ignore_index=-100; got -1")
    raises("target_huge", lambda: ops.cross_entropy(lg, np.array([0, 2 ** 62, 1])), ValueError,
           r"cross_entropy: targets must be in \[0, 5\)")
    raises("target_uint64_huge", lambda: ops.cross_entropy(lg, np.array([0, 2 ** 64 - 1, 1], np.uint64)),
           ValueError, r"cross_entropy: targets must be in \[0, 5\)")
    raises("targets_shape", lambda: ops.cross_entropy(lg, np.array([0, 1])), ValueError,
           r"cross_entropy: targets.shape=\(2,\), expected \(3,\) for logits.shape=\(3, 5\)")
    raises("logits_0d", lambda: ops.cross_entropy(np.ones((), np.float32), np.array(0)), ValueError,
           r"cross_entropy: logits must be \(C,\), \(N, C\) or \(N, C, d1, ...\), got a scalar")
    for cid, (v, exc) in {"float": (1.0, TypeError), "bool": (True, TypeError), "none": (None, TypeError),
                          "huge": (2 ** 63, ValueError)}.items():
        raises(f"ignore_index_{cid}", lambda v=v: ops.cross_entropy(lg, tg, ignore_index=v), exc,
               r"cross_entropy: ignore_index\b")
    for cid, (v, exc) in {"negative": (-0.1, ValueError), "above_1": (1.5, ValueError),
                          "nan": (float("nan"), ValueError), "inf": (float("inf"), ValueError),
                          "str": ("0.1", TypeError), "none": (None, TypeError)}.items():
        raises(f"label_smoothing_{cid}", lambda v=v: ops.cross_entropy(lg, tg, label_smoothing=v), exc,
               r"cross_entropy: label_smoothing\b")
    raises("reduction", lambda: ops.cross_entropy(lg, tg, reduction="avg"), ValueError,
           r"cross_entropy: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'")
    same("all_ignored_mean", lambda: ops.cross_entropy(lg, np.full(3, -100)),
         lambda: R.cross_entropy(lg, np.full(3, -100)))
    same("ignore_index_valid_class", lambda: ops.cross_entropy(lg, tg, ignore_index=2),
         lambda: R.cross_entropy(lg, tg, ignore_index=2))
    same("N0_sum", lambda: ops.cross_entropy(lg[:0], tg[:0], reduction="sum"),
         lambda: R.cross_entropy(lg[:0], tg[:0], reduction="sum"))
    same("N0_none", lambda: ops.cross_entropy(lg[:0], tg[:0], reduction="none"),
         lambda: R.cross_entropy(lg[:0], tg[:0], reduction="none"))
    same("N0_mean", lambda: ops.cross_entropy(lg[:0], tg[:0]), lambda: np.float64("nan"))
    same("C0_all_ignored", lambda: ops.cross_entropy(np.zeros((3, 0), np.float32), np.full(3, -100), reduction="sum"),
         lambda: np.float64(0.0))
    raises("C0_target", lambda: ops.cross_entropy(np.zeros((3, 0), np.float32), np.array([0, -100, -100])),
           ValueError, r"cross_entropy: targets must be in \[0, 0\) or ignore_index=-100; got 0")
    same("logits_1d", lambda: ops.cross_entropy(lg[0], np.array(2)), lambda: R.cross_entropy(lg[0], np.array(2)))
    same("nan_logits", lambda: ops.cross_entropy(with_nan(lg, 3), tg, reduction="none"),
         lambda: R.cross_entropy(with_nan(lg, 3), tg, reduction="none"))
    same("inf_logits", lambda: ops.cross_entropy(with_nan(lg, 3, np.inf), tg, reduction="none"),
         lambda: R.cross_entropy(with_nan(lg, 3, np.inf), tg, reduction="none"))
    same("neg_inf_target_logit", lambda: ops.cross_entropy(with_nan(lg, 0, -np.inf), tg, reduction="none"),
         lambda: R.cross_entropy(with_nan(lg, 0, -np.inf), tg, reduction="none"))
    same("targets_int8", lambda: ops.cross_entropy(lg, tg.astype(np.int8)), lambda: R.cross_entropy(lg, tg))
    opb = "cross_entropy_backward"
    raises("grad_shape_none", lambda: ops.cross_entropy_backward(np.ones(2), lg, tg, reduction="none"),
           ValueError, r"cross_entropy_backward: grad.shape=\(2,\), expected \(3,\) for reduction='none'", op=opb)
    raises("grad_not_scalar", lambda: ops.cross_entropy_backward(np.ones(3), lg, tg), ValueError,
           r"cross_entropy_backward: grad must be a scalar for reduction='mean', got grad.shape=\(3,\)", op=opb)
    raises("grad_str", lambda: ops.cross_entropy_backward("1", lg, tg), TypeError,
           r"cross_entropy_backward: grad must be a real number or a float array", op=opb)
    raises("grad_complex", lambda: ops.cross_entropy_backward(np.complex64(1), lg, tg), TypeError,
           r"cross_entropy_backward: grad must be a real number or a float array", op=opb)
    if cupy_available():
        raises("grad_on_gpu", lambda: ops.cross_entropy_backward(cupy_array(np.float32(1)), lg, tg),
               ValueError, r"cross_entropy_backward: arrays are on different devices.*grad on GPU", op=opb)
    same("grad_nan", lambda: ops.cross_entropy_backward(np.nan, lg, tg),
         lambda: R.cross_entropy_backward(np.nan, lg, tg), op=opb)
    same("all_ignored", lambda: ops.cross_entropy_backward(1.0, lg, np.full(3, -100)),
         lambda: R.cross_entropy_backward(1.0, lg, np.full(3, -100)), op=opb)

    # layer norm over the last two axes
    def mkln():
        return dict(x=det(76, 3, 4, 5), weight=det(77, 4, 5), bias=det(78, 4, 5))

    s = Spec("layer_norm", lambda x, weight, bias: ops.layer_norm(x, (4, 5), weight, bias, return_stats=True),
             mkln, {"x": "x", "weight": "weight", "bias": "bias"},
             ref=lambda x, weight, bias: (R.layer_norm(x, (4, 5), weight, bias),
                                          f64(x).mean(axis=(1, 2)),
                                          1 / np.sqrt(f64(x).var(axis=(1, 2)) + 1e-5)),
             ndim=["weight", "bias"])
    out += [valid_call_case(s)] + s.cases()

    def mklnb():
        return dict(mkln(), dy=det(79, 3, 4, 5))

    s = Spec("layer_norm_backward", lambda dy, x, weight, bias: ops.layer_norm_backward(dy, x, (4, 5), weight, bias),
             mklnb, {"dy": "dy", "x": "x", "weight": "weight", "bias": "bias"},
             ref=lambda dy, x, weight, bias: R.layer_norm_backward(dy, x, (4, 5), weight, bias),
             ndim=["dy", "weight", "bias"], rtol=1e-3, atol=1e-4)
    out += [valid_call_case(s)] + s.cases()

    def mklns():
        x = det(76, 3, 4, 5)
        return dict(mkln(), dy=det(79, 3, 4, 5), mean=f64(x).mean(axis=(1, 2)).astype(np.float32),
                    rstd=(1 / np.sqrt(f64(x).var(axis=(1, 2)) + 1e-5)).astype(np.float32))

    s = Spec("layer_norm_backward",
             lambda dy, x, weight, bias, mean, rstd: ops.layer_norm_backward(dy, x, (4, 5), weight, bias, mean=mean, rstd=rstd),
             mklns, {"mean": "mean", "rstd": "rstd"},
             ref=lambda dy, x, weight, bias, mean, rstd: R.layer_norm_backward(dy, x, (4, 5), weight, bias),
             ndim=[], rtol=1e-3, atol=1e-4, prefix="stats_",
             layout_names=[n for n in LAYOUTS if n != "bcast"])  # the stats are used as given
    out += s.cases()
    x, w, b = mkln()["x"], mkln()["weight"], mkln()["bias"]
    op = "layer_norm"

    def raises(cid, call, exc, match, op=op):  # noqa: F811
        out.append(Raises(op, cid, call, exc, match))

    def same(cid, call, ref, op=op, **kw):  # noqa: F811
        out.append(Same(op, cid, call, ref, **kw))
    for cid, (v, exc) in {"mismatch": ((5, 4), ValueError), "too_long": ((2, 3, 4, 5), ValueError),
                          "empty": ((), ValueError), "negative": (-5, ValueError),
                          "str": ("5", TypeError), "float": (5.0, TypeError),
                          "float_in_tuple": ((4, 5.0), TypeError), "none": (None, TypeError),
                          "bool": (True, TypeError)}.items():
        raises(f"normalized_shape_{cid}", lambda v=v: ops.layer_norm(x, v), exc,
               r"layer_norm: normalized_shape\b")
    raises("weight_shape", lambda: ops.layer_norm(x, (4, 5), w[:, :4]), ValueError,
           r"layer_norm: weight.shape=\(4, 4\), expected normalized_shape=\(4, 5\)")
    raises("weight_dtype", lambda: ops.layer_norm(x, (4, 5), w.astype(np.float64)), TypeError,
           r"layer_norm: weight has dtype float64 but x has float32")
    for cid, (v, exc) in {"negative": (-1e-5, ValueError), "nan": (float("nan"), ValueError),
                          "inf": (float("inf"), ValueError), "str": ("1e-5", TypeError),
                          "none": (None, TypeError)}.items():
        raises(f"eps_{cid}", lambda v=v: ops.layer_norm(x, 5, eps=v), exc, r"layer_norm: eps\b")
    same("eps_zero_constant_rows", lambda: ops.layer_norm(np.ones((2, 5), np.float32), 5, eps=0.0),
         lambda: R.layer_norm(np.ones((2, 5)), 5, eps=0.0))
    same("N0", lambda: ops.layer_norm(x[:0], (4, 5), w, b), lambda: R.layer_norm(x[:0], (4, 5), w, b))
    same("D0_stats", lambda: ops.layer_norm(np.ones((3, 0), np.float32), 0, return_stats=True),
         lambda: (np.ones((3, 0)), np.full(3, np.nan), np.full(3, np.nan)))
    same("nan_x", lambda: ops.layer_norm(with_nan(x, 7), (4, 5), w, b),
         lambda: R.layer_norm(with_nan(x, 7), (4, 5), w, b))
    same("inf_x", lambda: ops.layer_norm(with_nan(x, 7, np.inf), 5),
         lambda: R.layer_norm(with_nan(x, 7, np.inf), 5))
    same("normalized_shape_numpy", lambda: ops.layer_norm(x, np.array([4, 5]), w, b),
         lambda: R.layer_norm(x, (4, 5), w, b))
    same("normalized_shape_list", lambda: ops.layer_norm(x, [np.int64(5)]), lambda: R.layer_norm(x, 5))
    opb = "layer_norm_backward"
    dy = mklnb()["dy"]
    raises("dy_shape", lambda: ops.layer_norm_backward(dy[:2], x, 5), ValueError,
           r"layer_norm_backward: dy.shape=\(2, 4, 5\) must equal x.shape=\(3, 4, 5\)", op=opb)
    raises("mean_size", lambda: ops.layer_norm_backward(dy, x, 5, mean=np.zeros(3, np.float32),
                                                        rstd=np.ones(12, np.float32)), ValueError,
           r"layer_norm_backward: mean.shape=\(3,\) does not match x.shape=\(3, 4, 5\) with "
           r"normalized_shape=\(5,\)", op=opb)
    raises("rstd_int", lambda: ops.layer_norm_backward(dy, x, 5, mean=np.zeros(12, np.float32),
                                                       rstd=np.ones(12, np.int64)), TypeError,
           r"layer_norm_backward: rstd must be float32 or float64, got dtype int64", op=opb)
    if cupy_available():
        raises("dy_on_gpu_norm5", lambda: ops.layer_norm_backward(cupy_array(dy), x, 5), ValueError,
               r"layer_norm_backward: arrays are on different devices.*dy on GPU", op=opb)
        raises("mean_on_gpu", lambda: ops.layer_norm_backward(dy, x, 5, mean=cupy_array(np.zeros(12, np.float32)),
                                                              rstd=np.ones(12, np.float32)), ValueError,
               r"layer_norm_backward: arrays are on different devices.*mean on GPU", op=opb)
    same("N0", lambda: ops.layer_norm_backward(dy[:0], x[:0], (4, 5), w, b),
         lambda: R.layer_norm_backward(dy[:0], x[:0], (4, 5), w, b), op=opb)
    same("nan_dy", lambda: ops.layer_norm_backward(with_nan(dy, 7), x, (4, 5), w, b),
         lambda: R.layer_norm_backward(with_nan(dy, 7), x, (4, 5), w, b), op=opb, rtol=1e-3, atol=1e-4)
    return out


# ---- truncated SVD and SpMM --------------------------------------------------------------------

def _lowrank(seed, m, n, s=(10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1), dtype=np.float32):
    r = np.random.default_rng(seed)
    u = np.linalg.qr(r.standard_normal((m, len(s))))[0]
    v = np.linalg.qr(r.standard_normal((n, len(s))))[0]
    return ((u * np.asarray(s)) @ v.T).astype(dtype)


def _svd_summary(res):
    """(S, U S Vt): unique for a gap after the k-th singular value, unlike U and Vt."""
    u, s, vt = res
    return s, (np.asarray(u, np.float64) * np.asarray(s, np.float64)) @ np.asarray(vt, np.float64)


def _bad_csr(kind):
    import scipy.sparse as sp
    a = sp.random(6, 5, density=0.5, format="csr", random_state=3, dtype=np.float64)
    a.sort_indices()
    if kind == "col_past":
        a.indices[2] = 5
    elif kind == "col_negative":
        a.indices[1] = -1
    elif kind == "indptr_decreasing":
        a.indptr[2], a.indptr[3] = a.indptr[3], a.indptr[2]
    elif kind == "indptr_past":
        a.indptr[-1] += 1
        a.indptr[-2] = a.indptr[-1]
    return a


@group("svd")
def _svd_cases():
    import scipy.sparse as sp
    from bigmodel import ops
    from bigmodel import reference as R
    out = []
    kw = dict(n_iter=8, random_state=0)
    s = Spec("truncated_svd", lambda a: _svd_summary(ops.truncated_svd(a, 3, **kw)),
             lambda: dict(a=_lowrank(81, 30, 20)), {"a": "a"},
             ref=lambda a: _svd_summary(R.truncated_svd(a, 3)), rtol=1e-3, atol=1e-4)
    out += [valid_call_case(s)] + s.cases()
    s = Spec("truncated_svd", lambda a: _svd_summary(ops.truncated_svd(a, 3, method="lanczos", random_state=0)),
             lambda: dict(a=_lowrank(82, 20, 30, dtype=np.float64)), {"a": "a"},
             ref=lambda a: _svd_summary(R.truncated_svd(a, 3)), rtol=1e-8, atol=1e-9,
             dtypes=[], list_arg=[], ndim=[], cupy=[], prefix="lanczos_")
    out += s.cases()
    a = _lowrank(81, 30, 20)
    op = "truncated_svd"

    def raises(cid, call, exc, match, op=op):
        out.append(Raises(op, cid, call, exc, match))

    def same(cid, call, ref, op=op, **kw2):
        out.append(Same(op, cid, call, ref, **dict(dict(rtol=1e-3, atol=1e-4), **kw2)))

    raises("nan", lambda: ops.truncated_svd(with_nan(a, 3), 2), ValueError,
           r"truncated_svd: a contains NaN or Inf \(a.shape=\(30, 20\)\)")
    raises("inf", lambda: ops.truncated_svd(with_nan(a, 3, -np.inf), 2), ValueError,
           r"truncated_svd: a contains NaN or Inf")
    for cid, (v, exc) in {"zero": (0, ValueError), "negative": (-1, ValueError), "min": (20, ValueError),
                          "float": (2.0, TypeError), "bool": (True, TypeError), "none": (None, TypeError),
                          "huge": (2 ** 70, ValueError)}.items():
        raises(f"k_{cid}", lambda v=v: ops.truncated_svd(a, v), exc, r"truncated_svd: k\b")
    raises("k_message", lambda: ops.truncated_svd(a, 20), ValueError,
           r"truncated_svd: k must satisfy 1 <= k < min\(m, n\) = 20, got k=20 \(a.shape=\(30, 20\)\)")
    for cid, (v, exc) in {"negative": (-1, ValueError), "float": (1.5, TypeError), "none": (None, TypeError)}.items():
        raises(f"n_oversamples_{cid}", lambda v=v: ops.truncated_svd(a, 2, n_oversamples=v), exc,
               r"truncated_svd: n_oversamples\b")
    for cid, (v, exc) in {"negative": (-1, ValueError), "str": ("fast", ValueError), "float": (2.0, TypeError),
                          "none": (None, TypeError)}.items():
        raises(f"n_iter_{cid}", lambda v=v: ops.truncated_svd(a, 2, n_iter=v), exc, r"truncated_svd: n_iter\b")
    raises("method", lambda: ops.truncated_svd(a, 2, method="qr"), ValueError,
           r"truncated_svd: method must be one of \('randomized', 'lanczos'\), got 'qr'")
    for cid, (v, exc) in {"str": ("seed", TypeError), "negative": (-1, ValueError),
                          "float": (1.5, TypeError)}.items():
        raises(f"random_state_{cid}", lambda v=v: ops.truncated_svd(a, 2, random_state=v), exc,
               r"truncated_svd: random_state\b")
    same("k_numpy_int", lambda: _svd_summary(ops.truncated_svd(a, np.int64(3), **kw)),
         lambda: _svd_summary(R.truncated_svd(a, 3)))
    same("random_state_generator", lambda: _svd_summary(ops.truncated_svd(a, 3, n_iter=8, random_state=np.random.default_rng(1))),
         lambda: _svd_summary(R.truncated_svd(a, 3)))
    same("zero_matrix", lambda: _svd_summary(ops.truncated_svd(np.zeros((8, 6), np.float32), 2)),
         lambda: (np.zeros(2), np.zeros((8, 6))))
    same("rank_one", lambda: _svd_summary(ops.truncated_svd(np.outer(np.arange(1, 9), np.arange(1, 7)).astype(np.float64), 2)),
         lambda: _svd_summary(R.truncated_svd(np.outer(np.arange(1, 9), np.arange(1, 7)), 2)), rtol=1e-8, atol=1e-8)
    same("wide", lambda: _svd_summary(ops.truncated_svd(a.T, 3, **kw)), lambda: _svd_summary(R.truncated_svd(a.T, 3)))
    same("tiny_2x3", lambda: _svd_summary(ops.truncated_svd(a[:2, :3].astype(np.float64), 1)),
         lambda: _svd_summary(R.truncated_svd(a[:2, :3], 1)), rtol=1e-8, atol=1e-8)
    same("denormal_scale", lambda: _svd_summary(ops.truncated_svd(a.astype(np.float64) * 1e-300, 3, **kw))[0] * 1e300,
         lambda: _svd_summary(R.truncated_svd(a, 3))[0], rtol=1e-4)
    same("huge_scale", lambda: _svd_summary(ops.truncated_svd(a.astype(np.float64) * 1e300, 3, **kw))[0] * 1e-300,
         lambda: _svd_summary(R.truncated_svd(a, 3))[0], rtol=1e-4)
    # sparse
    csr = lambda: sp.csr_matrix(_lowrank(83, 25, 15, dtype=np.float64))  # noqa: E731
    same("csr", lambda: _svd_summary(ops.truncated_svd(csr(), 3, **kw)), lambda: _svd_summary(R.truncated_svd(csr(), 3)))
    same("csc", lambda: _svd_summary(ops.truncated_svd(csr().tocsc(), 3, **kw)), lambda: _svd_summary(R.truncated_svd(csr(), 3)))
    same("csr_int64_indices", lambda: _svd_summary(ops.truncated_svd(_with_index_dtype(csr(), np.int64), 3, **kw)),
         lambda: _svd_summary(R.truncated_svd(csr(), 3)))
    same("csr_empty", lambda: _svd_summary(ops.truncated_svd(sp.csr_matrix((7, 5), dtype=np.float32), 2)),
         lambda: (np.zeros(2), np.zeros((7, 5))))
    raises("coo", lambda: ops.truncated_svd(csr().tocoo(), 2), TypeError,
           r"truncated_svd: a must be a dense array or a SciPy CSR/CSC matrix, got sparse format 'coo'")
    raises("csr_int", lambda: ops.truncated_svd(csr().astype(np.int32), 2), TypeError,
           r"truncated_svd: a must be float32 or float64, got dtype int32")
    raises("csr_nan", lambda: ops.truncated_svd(_csr_with(csr(), 0, np.nan), 2), ValueError,
           r"truncated_svd: a contains NaN or Inf")
    for kind in ("col_past", "col_negative", "indptr_decreasing", "indptr_past"):
        raises(f"csr_{kind}", lambda kind=kind: ops.truncated_svd(_bad_csr(kind), 2), ValueError,
               r"truncated_svd: a\.(indices|indptr)\b")
    if gpu_path_absent():
        raises("a_on_gpu_dense", lambda: ops.truncated_svd(cupy_array(a), 2), (NotImplementedError, RuntimeError),
               r"truncated_svd.*(CUDA|GPU|CuPy)|CUDA module|no GPU")

    # spmm_csr
    op = "spmm_csr"

    def raises(cid, call, exc, match, op=op):  # noqa: F811
        out.append(Raises(op, cid, call, exc, match))
    A = lambda: _csr_from(_lowrank(84, 6, 5, s=(3.0, 2.0, 1.0), dtype=np.float64), 0.6)  # noqa: E731
    x_bad = {k: v for k, v in BAD_DTYPES.items() if k != "float16"}
    s = Spec("spmm_csr", lambda x: ops.spmm_csr(A(), x), lambda: dict(x=det(85, 5, 3, dtype=np.float64)),
             {"x": "x"}, ref=lambda x: R.spmm_csr(A(), x), rtol=1e-10, atol=1e-12,
             bad_dtypes={"x": x_bad}, cupy=[])
    out += [valid_call_case(s)] + s.cases()
    s = Spec("spmm_csr", lambda x: ops.spmm_csr(A(), x, transpose=True), lambda: dict(x=det(86, 6, 4, dtype=np.float64)),
             {"x": "x"}, ref=lambda x: R.spmm_csr(A(), x, transpose=True), rtol=1e-10, atol=1e-12,
             dtypes=[], list_arg=[], ndim=[], cupy=[], prefix="transpose_")
    out += s.cases()
    x = det(85, 5, 3, dtype=np.float64)
    raises("a_dense", lambda: ops.spmm_csr(A().toarray(), x), TypeError,
           r"spmm_csr: a must be a SciPy CSR/CSC matrix, got a dense array")
    raises("a_coo", lambda: ops.spmm_csr(A().tocoo(), x), TypeError, r"spmm_csr: a must be .*'coo'")
    raises("x_rows", lambda: ops.spmm_csr(A(), x[:4]), ValueError,
           r"spmm_csr: x has 4 rows, expected 5 \(a.shape=\(6, 5\), x.shape=\(4, 3\), transpose=False\)")
    raises("x_f16", lambda: ops.spmm_csr(A(), x.astype(np.float16)), TypeError,
           r"spmm_csr: x must be float32 or float64, got dtype float16")
    raises("out_shape", lambda: ops.spmm_csr(A(), x, out=np.empty((5, 3))), ValueError,
           r"spmm_csr: out must be \(6, 3\) float64, got \(5, 3\) float64")
    raises("out_dtype", lambda: ops.spmm_csr(A(), x, out=np.empty((6, 3), np.float32)), (TypeError, ValueError),
           r"spmm_csr: out must be \(6, 3\) float64, got \(6, 3\) float32")
    raises("out_readonly", lambda: ops.spmm_csr(A(), x, out=readonly(np.empty((6, 3)))), ValueError,
           r"spmm_csr: out is read-only")
    raises("out_list", lambda: ops.spmm_csr(A(), x, out=[[0.0] * 3] * 6), TypeError,
           r"spmm_csr: out must be a numpy.ndarray, got list")
    if cupy_available():
        raises("x_on_gpu", lambda: ops.spmm_csr(A(), cupy_array(x)), ValueError,
               r"spmm_csr: arrays are on different devices: a on CPU \(scipy\), x on GPU")
        raises("out_on_gpu", lambda: ops.spmm_csr(A(), x, out=cupy_array(np.empty((6, 3)))), ValueError,
               r"spmm_csr: arrays are on different devices.*out on GPU")
    for kind in ("col_past", "col_negative", "indptr_decreasing", "indptr_past"):
        raises(f"a_{kind}", lambda kind=kind: ops.spmm_csr(_bad_csr(kind), x), ValueError,
               r"spmm_csr: a\.(indices|indptr)\b")
    for ln in ("fortran", "strided", "negstride", "negstride_last", "misaligned"):
        def call(ln=ln):
            o = LAYOUTS[ln](np.zeros((6, 3)))
            r = ops.spmm_csr(A(), x, out=o)
            assert r is o, "spmm_csr did not return out"
            return o
        same(f"out_{ln}", call, lambda: R.spmm_csr(A(), x), op=op, rtol=1e-10, atol=1e-12)
    same("x_f32_to_a_f64", lambda: ops.spmm_csr(A(), x.astype(np.float32)),
         lambda: R.spmm_csr(A(), x.astype(np.float32)), op=op, rtol=1e-10, atol=1e-12)
    same("zero_rows", lambda: ops.spmm_csr(sp.csr_matrix((0, 5)), x), lambda: np.zeros((0, 3)), op=op)
    same("zero_cols_x", lambda: ops.spmm_csr(A(), x[:, :0]), lambda: np.zeros((6, 0)), op=op)
    same("zero_inner", lambda: ops.spmm_csr(sp.csr_matrix((6, 0)), np.zeros((0, 3))), lambda: np.zeros((6, 3)), op=op)
    same("nnz0", lambda: ops.spmm_csr(sp.csr_matrix((6, 5)), x), lambda: np.zeros((6, 3)), op=op)
    # sparse semantics: stored entries only, as scipy (a NaN in x reaches only rows that use it)
    same("nan_x", lambda: ops.spmm_csr(A(), with_nan(x, 4)), lambda: A() @ with_nan(x, 4), op=op,
         rtol=1e-10, atol=1e-12)
    same("csc_transpose", lambda: ops.spmm_csr(A().tocsc(), det(86, 6, 4, dtype=np.float64), transpose=True),
         lambda: R.spmm_csr(A(), det(86, 6, 4, dtype=np.float64), transpose=True), op=op, rtol=1e-10, atol=1e-12)
    same("unsorted_duplicates", lambda: ops.spmm_csr(_dup_csr(), x), lambda: R.spmm_csr(_dup_csr(), x), op=op,
         rtol=1e-10, atol=1e-12)
    return out


def _csr_from(d, density):
    import scipy.sparse as sp
    mask = np.random.default_rng(5).random(d.shape) < density
    return sp.csr_matrix(np.where(mask, d, 0.0))


def _csr_with(a, i, v):
    a = a.copy()
    a.data[i] = v
    return a


def _with_index_dtype(a, dt):
    a = a.copy()
    a.indptr = a.indptr.astype(dt)
    a.indices = a.indices.astype(dt)
    return a


def _dup_csr():
    import scipy.sparse as sp
    data = np.array([1.0, 2.0, 3.0, 4.0])
    indices = np.array([3, 1, 3, 0])  # unsorted, column 3 twice in row 0
    indptr = np.array([0, 3, 3, 4, 4, 4, 4])
    return sp.csr_matrix((data, indices, indptr), shape=(6, 5))


# ---- element-wise and fused optimizer updates --------------------------------------------------

@group("elementwise")
def _elementwise_cases():
    from bigmodel import ops
    from bigmodel import reference as R
    out = []
    X = lambda: det(91, 4, 6)  # noqa: E731
    s = Spec("relu", lambda x: ops.relu(x), lambda: dict(x=X()), {"x": "x"}, ref=R.relu, ndim=[])
    out += [valid_call_case(s)] + s.cases()
    s = Spec("relu_backward", lambda dy, x: ops.relu_backward(dy, x), lambda: dict(dy=det(92, 4, 6), x=X()),
             {"dy": "dy", "x": "x"}, ref=R.relu_backward, ndim=[])
    out += [valid_call_case(s)] + s.cases()
    x = X()
    out.append(Same("relu", "nan_inf", lambda: ops.relu(with_nan(with_nan(x, 3), 4, -np.inf)),
                    lambda: R.relu(with_nan(with_nan(x, 3), 4, -np.inf))))
    out.append(Same("relu", "zero_size", lambda: ops.relu(x[:0]), lambda: np.zeros((0, 6))))
    out.append(Same("relu", "0d", lambda: ops.relu(np.array(-2.0)), lambda: np.array(0.0)))
    out.append(Same("relu_backward", "nan_dy", lambda: ops.relu_backward(with_nan(x, 1), x),
                    lambda: R.relu_backward(with_nan(x, 1), x)))
    out.append(Raises("relu_backward", "shape", lambda: ops.relu_backward(x[:3], x), ValueError,
                      r"relu_backward: dy \(shape \(3, 6\), float32\) must match x \(shape \(4, 6\), float32\)"))
    out.append(Raises("relu_backward", "dtype", lambda: ops.relu_backward(x.astype(np.float64), x), (TypeError, ValueError),
                      r"relu_backward: dy \(shape \(4, 6\), float64\) must match x"))

    def sgd_kw():
        return dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)

    def mks():
        return dict(w=det(93, 4, 6), g=det(94, 4, 6), buf=det(95, 4, 6))

    def sgd_call(w, g, buf):
        w, buf = np.array(w), np.array(buf)
        ops.sgd_update(w, g, buf, **sgd_kw())
        return w, buf

    def sgd_inplace(key, conv):
        def call():
            d = mks()
            d[key] = conv(d[key])
            ops.sgd_update(d["w"], d["g"], d["buf"], **sgd_kw())
            return d["w"], d["buf"]
        return call

    s = Spec("sgd_update", sgd_call, mks, {"w": "w", "g": "g", "buf": "buf"},
             ref=lambda w, g, buf: R.sgd_update(w, g, buf, **sgd_kw()), ndim=["g", "buf"], layouts=["g"],
             list_arg=["g"], cupy=["g"])
    out += [valid_call_case(s)] + s.cases()
    for key in ("w", "buf"):
        out.append(Raises("sgd_update", f"{key}_list", sgd_inplace(key, lambda a: a.tolist()), TypeError,
                          rf"sgd_update: {key} must be a numpy.ndarray.*got list"))
        if cupy_available():
            out.append(Raises("sgd_update", f"{key}_on_gpu", sgd_inplace(key, cupy_array), ValueError,
                              rf"sgd_update: arrays are on different devices.*{key} on GPU"))
        for ln in ("fortran", "strided", "negstride", "readonly", "bcast"):
            out.append(Raises("sgd_update", f"{key}_{ln}", sgd_inplace(key, LAYOUTS[ln]), ValueError,
                              rf"sgd_update: {key} must be a writeable C-contiguous array"))
        out.append(Same("sgd_update", f"{key}_misaligned", sgd_inplace(key, misaligned),
                        lambda: R.sgd_update(**mks(), **sgd_kw())))
    for name in ("lr", "momentum", "weight_decay"):
        for cid, (v, exc) in {"str": ("0.1", TypeError), "none": (None, TypeError), "nan": (float("nan"), ValueError),
                              "inf": (float("inf"), ValueError), "negative": (-0.1, ValueError),
                              "bool": (True, TypeError)}.items():
            out.append(Raises("sgd_update", f"{name}_{cid}",
                              lambda name=name, v=v: ops.sgd_update(**mks(), **dict(sgd_kw(), **{name: v})),
                              exc, rf"sgd_update: {name}\b"))
    out.append(Raises("sgd_update", "nesterov_str", lambda: ops.sgd_update(**mks(), **dict(sgd_kw(), nesterov="no")),
                      TypeError, r"sgd_update: nesterov must be a bool"))
    out.append(Raises("sgd_update", "g_shape", lambda: ops.sgd_update(**dict(mks(), g=det(1, 6, 4)), **sgd_kw()),
                      ValueError, r"sgd_update: g \(shape \(6, 4\), float32\) must match w \(shape \(4, 6\), float32\)"))
    out.append(Same("sgd_update", "zero_size", lambda: sgd_call(*(np.zeros((0, 3), np.float32),) * 3),
                    lambda: (np.zeros((0, 3)), np.zeros((0, 3)))))
    out.append(Same("sgd_update", "nan_g", lambda: sgd_call(mks()["w"], with_nan(mks()["g"], 2), mks()["buf"]),
                    lambda: R.sgd_update(mks()["w"], with_nan(mks()["g"], 2), mks()["buf"], **sgd_kw())))

    def mka():
        return dict(w=det(96, 5, 3), g=det(97, 5, 3), m=det(98, 5, 3), v=np.abs(det(99, 5, 3)))

    akw = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, decoupled=True, step=3)

    def adam_call(w, g, m, v):
        w, m, v = np.array(w), np.array(m), np.array(v)
        ops.adam_update(w, g, m, v, **akw)
        return w, m, v

    def adam_inplace(key, conv):
        def call():
            d = mka()
            d[key] = conv(d[key])
            ops.adam_update(d["w"], d["g"], d["m"], d["v"], **akw)
            return d["w"], d["m"], d["v"]
        return call

    s = Spec("adam_update", adam_call, mka, {"w": "w", "g": "g", "m": "m", "v": "v"},
             ref=lambda w, g, m, v: R.adam_update(w, g, m, v, **akw), ndim=["g", "m", "v"], layouts=["g"],
             list_arg=["g"], cupy=["g"])
    out += [valid_call_case(s)] + s.cases()
    for key in ("w", "m", "v"):
        out.append(Raises("adam_update", f"{key}_list", adam_inplace(key, lambda a: a.tolist()), TypeError,
                          rf"adam_update: {key} must be a numpy.ndarray.*got list"))
        if cupy_available():
            out.append(Raises("adam_update", f"{key}_on_gpu", adam_inplace(key, cupy_array), ValueError,
                              rf"adam_update: arrays are on different devices.*\b{key} on GPU"))
        for ln in ("strided", "negstride", "readonly"):
            out.append(Raises("adam_update", f"{key}_{ln}", adam_inplace(key, LAYOUTS[ln]), ValueError,
                              rf"adam_update: {key} must be a writeable C-contiguous array"))
    for cid, (v, exc) in {"zero": (0, ValueError), "negative": (-3, ValueError), "float": (1.5, TypeError),
                          "str": ("3", TypeError), "none": (None, TypeError), "bool": (True, TypeError),
                          "huge": (2 ** 63, ValueError)}.items():
        out.append(Raises("adam_update", f"step_{cid}", lambda v=v: ops.adam_update(**mka(), **dict(akw, step=v)),
                          exc, r"adam_update: step\b"))
    for cid, (v, exc) in {"one": ((0.9,), ValueError), "three": ((0.9, 0.9, 0.9), ValueError),
                          "above_1": ((0.9, 1.0), ValueError), "negative": ((-0.1, 0.9), ValueError),
                          "nan": ((0.9, float("nan")), ValueError), "str": ("0.9", TypeError),
                          "none": (None, TypeError)}.items():
        out.append(Raises("adam_update", f"betas_{cid}", lambda v=v: ops.adam_update(**mka(), **dict(akw, betas=v)),
                          exc, r"adam_update: betas\b"))
    for name in ("lr", "eps", "weight_decay"):
        for cid, (v, exc) in {"str": ("1", TypeError), "nan": (float("nan"), ValueError),
                              "negative": (-1.0, ValueError)}.items():
            out.append(Raises("adam_update", f"{name}_{cid}",
                              lambda name=name, v=v: ops.adam_update(**mka(), **dict(akw, **{name: v})),
                              exc, rf"adam_update: {name}\b"))
    out.append(Raises("adam_update", "m_is_v", lambda: _adam_alias(ops, mka, akw), ValueError,
                      r"adam_update: m and v must not share memory"))
    out.append(Same("adam_update", "zero_size", lambda: adam_call(*(np.zeros((0, 3), np.float32),) * 4),
                    lambda: (np.zeros((0, 3)),) * 3))
    out.append(Same("adam_update", "inf_g", lambda: adam_call(**dict(mka(), g=with_nan(mka()["g"], 2, np.inf))),
                    lambda: R.adam_update(**dict(mka(), g=with_nan(mka()["g"], 2, np.inf)), **akw)))
    return out


def _adam_alias(ops, mka, akw):
    d = mka()
    return ops.adam_update(d["w"], d["g"], d["m"], d["m"], **akw)


# ---- functional API ----------------------------------------------------------------------------

@group("functional")
def _functional_cases():
    import bigmodel.functional as F
    from bigmodel import Tensor
    from bigmodel import reference as R
    out = []

    def T(a, rg=False):
        return Tensor(a, requires_grad=rg)

    def raises(op, cid, call, exc, match):
        out.append(Raises(op, cid, call, exc, match))

    def same(op, cid, call, ref, **kw):
        out.append(Same(op, cid, call, ref, **kw))

    x, w, b = det(101, 4, 3), det(102, 5, 3), det(103, 5)
    raises("F.matmul", "inner", lambda: F.matmul(T(x), T(w)), ValueError,
           r"gemm: inner dimensions differ.*a.shape=\(4, 3\), b.shape=\(5, 3\)")
    raises("F.matmul", "1d", lambda: F.matmul(T(x[0]), T(w)), ValueError, r"gemm: a must be 2-D or 3-D")
    same("F.matmul", "views", lambda: F.matmul(T(negstride(x)), T(fortran(w.T))), lambda: R.matmul(x, w.T))
    raises("F.linear", "features", lambda: F.linear(T(x), T(det(1, 5, 4))), ValueError,
           r"linear: x has 3 features but weight expects 4 \(x.shape=\(4, 3\), weight.shape=\(5, 4\)\)")
    raises("F.linear", "weight_1d", lambda: F.linear(T(x), T(b)), ValueError,
           r"linear: weight must be 2-D \(out_features, in_features\), got weight.shape=\(5,\)")
    raises("F.linear", "x_0d", lambda: F.linear(T(np.float32(1)), T(w)), ValueError,
           r"linear: x must have at least 1 dimension, got x.shape=\(\)")
    raises("F.linear", "bias_shape", lambda: F.linear(T(x), T(w), T(b[:4])), ValueError,
           r"linear: bias.shape=\(4,\), expected \(5,\) for weight.shape=\(5, 3\)")
    same("F.linear", "bias_ndarray", lambda: F.linear(T(x), T(w), b), lambda: x.astype(np.float64) @ w.T + b)
    same("F.linear", "x_3d", lambda: F.linear(T(det(104, 2, 4, 3)), T(w), T(b)),
         lambda: det(104, 2, 4, 3).astype(np.float64) @ w.T + b)
    same("F.linear", "in_features_0", lambda: F.linear(T(np.zeros((4, 0), np.float32)), T(np.zeros((5, 0), np.float32)), T(b)),
         lambda: np.broadcast_to(b, (4, 5)))
    xc, wc, bc = det(105, 2, 3, 6, 6), det(106, 4, 3, 3, 3), det(107, 4)
    same("F.conv2d", "bias_ndarray", lambda: F.conv2d(T(xc), T(wc), bc, padding=1),
         lambda: R.conv2d(xc, wc, bc, padding=1))
    raises("F.conv2d", "stride_zero", lambda: F.conv2d(T(xc), T(wc), stride=0), ValueError, r"conv2d: stride must be >= 1")
    raises("F.conv2d", "x_3d", lambda: F.conv2d(T(xc[0]), T(wc)), ValueError, r"conv2d: x must be 4-D, got x.shape=\(3, 6, 6\)")
    raises("F.max_pool2d", "kernel_zero", lambda: F.max_pool2d(T(xc), 0), ValueError, r"max_pool2d: kernel_size must be >= 1")
    raises("F.avg_pool2d", "x_3d", lambda: F.avg_pool2d(T(xc[0]), 2), ValueError, r"avg_pool2d: x must be 4-D")
    raises("F.global_avg_pool2d", "x_2d", lambda: F.global_avg_pool2d(T(x)), ValueError, r"global_avg_pool2d: x must be 4-D")
    raises("F.softmax", "axis", lambda: F.softmax(T(x), axis=2), ValueError, r"softmax: axis 2 is out of range for x.shape=\(4, 3\)")
    raises("F.log_softmax", "int", lambda: F.log_softmax(T(np.arange(4))), TypeError, r"log_softmax: x must be float32 or float64, got dtype int64")
    for name in ("relu", "gelu", "tanh", "sigmoid", "exp"):
        fn = getattr(F, name)
        ref = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh, "exp": np.exp,
               "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
               "gelu": lambda a: 0.5 * a * (1 + np.vectorize(__import__("math").erf)(a / np.sqrt(2)))}[name]
        v = np.array([np.nan, np.inf, -np.inf, 0.5, -2.0], np.float32)
        same(f"F.{name}", "nan_inf", lambda fn=fn, v=v: fn(T(v)), lambda ref=ref, v=v: ref(v.astype(np.float64)))
        same(f"F.{name}", "views", lambda fn=fn: fn(T(negstride(fortran(xc[0, 0])))),
             lambda ref=ref: ref(xc[0, 0].astype(np.float64)), rtol=1e-5, atol=1e-6)
    logits, tg = det(108, 4, 5), np.array([1, 0, 4, -100])
    raises("F.cross_entropy", "label_past", lambda: F.cross_entropy(T(logits), np.array([1, 0, 5, 2])), ValueError,
           r"cross_entropy: target 5 is out of range for 5 classes \(logits.shape=\(4, 5\)\)")
    raises("F.cross_entropy", "label_negative", lambda: F.cross_entropy(T(logits), np.array([1, 0, -1, 2])), ValueError,
           r"cross_entropy: target -1 is out of range for 5 classes")
    raises("F.cross_entropy", "label_float", lambda: F.cross_entropy(T(logits), np.array([1.0, 0, 2, 2])), TypeError,
           r"cross_entropy: targets must be integer class indices, got dtype float64")
    raises("F.cross_entropy", "logits_0d", lambda: F.cross_entropy(T(np.float32(1)), np.array(0)), ValueError,
           r"cross_entropy: logits must be \(C,\), \(N, C\) or \(N, C, d1, ...\), got a scalar")
    raises("F.cross_entropy", "targets_shape", lambda: F.cross_entropy(T(logits), np.array([1, 0])), ValueError,
           r"cross_entropy: targets.shape=\(2,\), expected \(4,\) for logits.shape=\(4, 5\)")
    same("F.cross_entropy", "targets_list", lambda: F.cross_entropy(T(logits), [1, 0, 4, -100]),
         lambda: R.cross_entropy(logits, tg))
    same("F.cross_entropy", "targets_tensor", lambda: F.cross_entropy(T(logits), Tensor(tg)), lambda: R.cross_entropy(logits, tg))
    raises("F.mse_loss", "shape", lambda: F.mse_loss(T(x), T(x[:, :1])), ValueError,
           r"mse_loss: pred.shape=\(4, 3\) and target.shape=\(4, 1\) differ")
    raises("F.mse_loss", "reduction", lambda: F.mse_loss(T(x), T(x), reduction="avg"), ValueError,
           r"mse_loss: reduction must be 'mean', 'sum' or 'none', got 'avg'")
    same("F.mse_loss", "nan", lambda: F.mse_loss(T(with_nan(x, 1)), T(x)), lambda: np.float64("nan"))
    for cid, (v, exc) in {"one": (1.0, ValueError), "negative": (-0.1, ValueError), "nan": (float("nan"), ValueError),
                          "str": ("0.5", TypeError), "none": (None, TypeError)}.items():
        raises("F.dropout", f"p_{cid}", lambda v=v: F.dropout(T(x), v), exc, r"dropout: p\b")
    same("F.dropout", "eval", lambda: F.dropout(T(x), 0.5, training=False), lambda: x)
    same("F.layer_norm", "weight_ndarray", lambda: F.layer_norm(T(x), 3, np.ones(3, np.float32), np.zeros(3, np.float32)),
         lambda: R.layer_norm(x, 3))
    raises("F.layer_norm", "shape", lambda: F.layer_norm(T(x), 4), ValueError,
           r"layer_norm: normalized_shape=\(4,\) must match the trailing dimensions of x.shape=\(4, 3\)")
    xb = det(109, 4, 3, 2, 2)
    rm, rv = lambda: np.zeros(3, np.float32), lambda: np.ones(3, np.float32)  # noqa: E731
    raises("F.batch_norm", "running_mean_shape", lambda: F.batch_norm(T(xb), np.zeros(4, np.float32), rv()), ValueError,
           r"batch_norm: running_mean.shape=\(4,\), expected \(3,\) for x.shape=\(4, 3, 2, 2\)")
    raises("F.batch_norm", "running_var_shape", lambda: F.batch_norm(T(xb), rm(), np.ones((3, 1), np.float32)), ValueError,
           r"batch_norm: running_var.shape=\(3, 1\), expected \(3,\)")
    raises("F.batch_norm", "weight_shape", lambda: F.batch_norm(T(xb), rm(), rv(), T(np.ones(2, np.float32))), ValueError,
           r"batch_norm: weight.shape=\(2,\), expected \(3,\)")
    raises("F.batch_norm", "x_1d", lambda: F.batch_norm(T(xb[0, 0, 0]), rm(), rv()), ValueError,
           r"batch_norm: x must be \(N, C, ...\), got x.shape=\(2,\)")
    raises("F.batch_norm", "one_value_per_channel", lambda: F.batch_norm(T(xb[:1, :, :1, :1]), rm(), rv()), ValueError,
           r"batch_norm: expected more than 1 value per channel when training, got x.shape=\(1, 3, 1, 1\)")
    raises("F.batch_norm", "running_mean_none", lambda: F.batch_norm(T(xb), None, rv()), TypeError,
           r"batch_norm: running_mean must be a numpy.ndarray")
    same("F.batch_norm", "eval_N1", lambda: F.batch_norm(T(xb[:1, :, :1, :1]), rm(), rv(), training=False),
         lambda: xb[:1, :, :1, :1] / np.sqrt(1 + 1e-5))
    E = det(110, 10, 3)
    raises("F.embedding", "index_past", lambda: F.embedding(np.array([1, 10]), T(E)), ValueError,
           r"embedding: index 10 is out of range for 10 rows \(weight.shape=\(10, 3\)\)")
    raises("F.embedding", "index_negative", lambda: F.embedding(np.array([-1, 2]), T(E)), ValueError,
           r"embedding: index -1 is out of range for 10 rows")
    raises("F.embedding", "index_float", lambda: F.embedding(np.array([1.0]), T(E)), TypeError,
           r"embedding: indices must be integers, got dtype float64")
    raises("F.embedding", "weight_1d", lambda: F.embedding(np.array([1]), T(E[0])), ValueError,
           r"embedding: weight must be 2-D \(num_embeddings, embedding_dim\), got weight.shape=\(3,\)")
    same("F.embedding", "weight_ndarray", lambda: F.embedding(np.array([[1, 9]]), E), lambda: E[[[1, 9]]])
    same("F.embedding", "indices_list", lambda: F.embedding([3, 3], T(E)), lambda: E[[3, 3]])
    same("F.embedding", "indices_empty", lambda: F.embedding(np.zeros((2, 0), int), T(E)), lambda: np.zeros((2, 0, 3)))
    same("F.embedding", "dim0_backward", lambda: _backward_of(F.embedding(np.array([1, 2]), T(E[:, :0], True)), 0),
         lambda: np.zeros((10, 0)))
    same("F.linear", "out_features_0_backward", lambda: _backward_of(F.linear(T(x, True), T(w[:0], True)), 0),
         lambda: np.zeros((4, 3)))
    q = det(111, 1, 2, 4, 3)
    raises("F.attention", "q_3d", lambda: F.attention(T(q[0]), T(q), T(q)), ValueError, r"attention: q must be 4-D")
    same("F.attention", "mask_tensor", lambda: F.attention(T(q), T(q), T(q), mask=Tensor(np.tril(np.ones((4, 4), bool)))),
         lambda: R.attention(q, q, q, causal=True))
    xs = det(112, 2, 5, 3)
    wl = [(det(113, 16, 3), det(114, 16, 4), det(115, 16), det(116, 16))]
    same("F.lstm", "weights_ndarray", lambda: F.lstm(T(xs), wl), lambda: R.lstm(xs, wl)[:3])
    same("F.lstm", "weights_no_bias", lambda: F.lstm(T(xs), [tuple(T(a) for a in wl[0][:2]) + (None, None)]),
         lambda: R.lstm(xs, [wl[0][:2]])[:3])
    raises("F.lstm", "lengths_past", lambda: F.lstm(T(xs), [tuple(T(a) for a in wl[0])], lengths=[5, 6]), ValueError,
           r"lstm: lengths must lie in \[0, 5\]")
    raises("F.gru", "weights_shape", lambda: F.gru(T(xs), [tuple(T(a) for a in wl[0])]), ValueError,
           r"gru: weights\[0\]\[0\] \(w_ih, layer 0\).shape=\(16, 3\), expected \(12, 3\)")
    raises("F.rnn", "nonlinearity", lambda: F.rnn(T(xs), [(T(det(1, 4, 3)), T(det(2, 4, 4)))], nonlinearity="elu"),
           ValueError, r"rnn: nonlinearity must be 'tanh' or 'relu', got 'elu'")
    for cid, (v, exc) in {"past": (3, ValueError), "neg_past": (-4, ValueError), "float": (1.0, TypeError)}.items():
        raises("F.flatten", f"start_dim_{cid}", lambda v=v: F.flatten(T(xs), v), exc,
               r"flatten: start_dim\b.*x.shape=\(2, 5, 3\)")
    same("F.flatten", "start_dim_negative", lambda: F.flatten(T(xs), -2), lambda: xs.reshape(2, 15))
    same("F.flatten", "start_dim_0", lambda: F.flatten(T(xs), 0), lambda: xs.reshape(30))
    return out


# ---- nn layers ---------------------------------------------------------------------------------

@group("layers")
def _layer_cases():
    from bigmodel import Tensor
    from bigmodel import nn
    out = []

    def raises(op, cid, call, exc, match):
        out.append(Raises(op, cid, call, exc, match))

    def T(a):
        return Tensor(a)

    x2, x4 = det(121, 4, 3), det(122, 2, 3, 6, 6)
    ctor_bad = {"negative": (-1, ValueError), "float": (2.5, TypeError), "str": ("3", TypeError),
                "none": (None, TypeError), "bool": (True, TypeError)}
    for cid, (v, exc) in ctor_bad.items():
        raises("Linear", f"in_features_{cid}", lambda v=v: nn.Linear(v, 4), exc, r"Linear: in_features\b")
        raises("Linear", f"out_features_{cid}", lambda v=v: nn.Linear(3, v), exc, r"Linear: out_features\b")
        raises("Embedding", f"num_embeddings_{cid}", lambda v=v: nn.Embedding(v, 4), exc, r"Embedding: num_embeddings\b")
        raises("Embedding", f"embedding_dim_{cid}", lambda v=v: nn.Embedding(4, v), exc, r"Embedding: embedding_dim\b")
        raises("BatchNorm2d", f"num_features_{cid}", lambda v=v: nn.BatchNorm2d(v), exc, r"BatchNorm2d: num_features\b")
        raises("LayerNorm", f"normalized_shape_{cid}", lambda v=v: nn.LayerNorm(v), exc, r"LayerNorm: normalized_shape\b")
    for cid, (v, exc) in dict(ctor_bad, zero=(0, ValueError)).items():
        raises("Conv2d", f"in_channels_{cid}", lambda v=v: nn.Conv2d(v, 4, 3), exc, r"Conv2d: in_channels\b")
        raises("Conv2d", f"out_channels_{cid}", lambda v=v: nn.Conv2d(3, v, 3), exc, r"Conv2d: out_channels\b")
        raises("Conv2d", f"kernel_size_{cid}", lambda v=v: nn.Conv2d(3, 4, v), exc, r"Conv2d: kernel_size\b")
        raises("Conv2d", f"groups_{cid}", lambda v=v: nn.Conv2d(4, 4, 3, groups=v), exc, r"Conv2d: groups\b")
        for cls in ("RNN", "LSTM", "GRU"):
            raises(cls, f"input_size_{cid}", lambda v=v, cls=cls: getattr(nn, cls)(v, 4), exc, rf"{cls}: input_size\b")
            raises(cls, f"hidden_size_{cid}", lambda v=v, cls=cls: getattr(nn, cls)(3, v), exc, rf"{cls}: hidden_size\b")
            raises(cls, f"num_layers_{cid}", lambda v=v, cls=cls: getattr(nn, cls)(3, 4, num_layers=v), exc,
                   rf"{cls}: num_layers\b")
        raises("MultiheadAttention", f"num_heads_{cid}", lambda v=v: nn.MultiheadAttention(8, v), exc,
               r"MultiheadAttention: num_heads\b")
        raises("MultiheadAttention", f"embed_dim_{cid}", lambda v=v: nn.MultiheadAttention(v, 1), exc,
               r"MultiheadAttention: embed_dim\b")
    raises("Conv2d", "kernel_size_pair_zero", lambda: nn.Conv2d(3, 4, (3, 0)), ValueError, r"Conv2d: kernel_size\b")
    raises("Conv2d", "groups_divide", lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
           r"Conv2d: groups=4 must divide in_channels=4 and out_channels=6")
    raises("MultiheadAttention", "heads_divide", lambda: nn.MultiheadAttention(8, 3), ValueError,
           r"MultiheadAttention: embed_dim=8 is not divisible by num_heads=3")
    raises("RNN", "nonlinearity", lambda: nn.RNN(3, 4, nonlinearity="gelu"), ValueError,
           r"RNN: nonlinearity must be 'tanh' or 'relu', got 'gelu'")
    raises("TransformerEncoderLayer", "activation", lambda: nn.TransformerEncoderLayer(8, 2, 16, activation="swish"),
           ValueError, r"TransformerEncoderLayer: activation must be 'relu' or 'gelu', got 'swish'")
    for cid, (v, exc) in {"one": (1.0, ValueError), "negative": (-0.5, ValueError), "str": ("0.1", TypeError),
                          "nan": (float("nan"), ValueError)}.items():
        raises("Dropout", f"p_{cid}", lambda v=v: nn.Dropout(v), exc, r"Dropout: p\b")
    raises("Embedding", "padding_idx_past", lambda: nn.Embedding(5, 2, padding_idx=5), ValueError,
           r"Embedding: padding_idx must be in \[-5, 5\), got 5")
    raises("Embedding", "padding_idx_float", lambda: nn.Embedding(5, 2, padding_idx=1.0), TypeError,
           r"Embedding: padding_idx must be an int or None")

    # forward with a wrong input shape: the message names the layer and the shapes
    raises("Linear", "forward_features", lambda: nn.Linear(3, 4)(T(det(1, 4, 5))), ValueError,
           r"Linear\(3, 4\): input has 5 features \(x.shape=\(4, 5\)\)")
    raises("Linear", "forward_0d", lambda: nn.Linear(3, 4)(T(np.float32(1))), ValueError,
           r"Linear\(3, 4\): .*x.shape=\(\)")
    raises("Conv2d", "forward_channels", lambda: nn.Conv2d(4, 2, 3)(T(x4)), ValueError,
           r"Conv2d\(4, 2\): expected input \(N, 4, H, W\), got x.shape=\(2, 3, 6, 6\)")
    raises("Conv2d", "forward_3d", lambda: nn.Conv2d(3, 2, 3)(T(x4[0])), ValueError,
           r"Conv2d\(3, 2\): expected input \(N, 3, H, W\), got x.shape=\(3, 6, 6\)")
    raises("Conv2d", "forward_too_small", lambda: nn.Conv2d(3, 2, 7)(T(x4)), ValueError,
           r"conv2d: kernel \(7x7 with dilation \(1, 1\)\) is larger than the padded input \(6x6\)")
    for cls in ("MaxPool2d", "AvgPool2d"):
        raises(cls, "forward_3d", lambda cls=cls: getattr(nn, cls)(2)(T(x4[0])), ValueError,
               rf"{cls}\(kernel_size=2.*\): expected input \(N, C, H, W\), got x.shape=\(3, 6, 6\)")
        raises(cls, "kernel_zero", lambda cls=cls: getattr(nn, cls)(0), ValueError, rf"{cls}: kernel_size must be >= 1")
    raises("BatchNorm2d", "forward_channels", lambda: nn.BatchNorm2d(4)(T(x4)), ValueError,
           r"BatchNorm2d\(4\): expected input \(N, 4, H, W\), got x.shape=\(2, 3, 6, 6\)")
    raises("BatchNorm2d", "forward_2d", lambda: nn.BatchNorm2d(3)(T(x2)), ValueError,
           r"BatchNorm2d\(3\): expected input \(N, 3, H, W\), got x.shape=\(4, 3\)")
    raises("LayerNorm", "forward_shape", lambda: nn.LayerNorm(5)(T(x2)), ValueError,
           r"layer_norm: normalized_shape=\(5,\) must match the trailing dimensions of x.shape=\(4, 3\)")
    raises("Embedding", "forward_index", lambda: nn.Embedding(5, 2)(np.array([5])), ValueError,
           r"embedding: index 5 is out of range for 5 rows \(weight.shape=\(5, 2\)\)")
    raises("Flatten", "forward_start_dim", lambda: nn.Flatten(3)(T(x2)), ValueError,
           r"flatten: start_dim 3 is out of range for x.shape=\(4, 3\)")
    mha = lambda: nn.MultiheadAttention(8, 2)  # noqa: E731
    raises("MultiheadAttention", "forward_2d", lambda: mha()(T(det(1, 5, 8))), ValueError,
           r"MultiheadAttention\(8, 2\): query must be \(batch, seq, 8\), got query.shape=\(5, 8\)")
    raises("MultiheadAttention", "forward_embed", lambda: mha()(T(det(1, 2, 5, 6))), ValueError,
           r"MultiheadAttention\(8, 2\): query must be \(batch, seq, 8\), got query.shape=\(2, 5, 6\)")
    raises("MultiheadAttention", "forward_key_batch", lambda: mha()(T(det(1, 2, 5, 8)), T(det(2, 3, 5, 8))), ValueError,
           r"MultiheadAttention\(8, 2\): key.shape=\(3, 5, 8\) and value.shape=\(3, 5, 8\) must be "
           r"\(2, S, 8\) for query.shape=\(2, 5, 8\)")
    raises("MultiheadAttention", "forward_mask", lambda: mha()(T(det(1, 2, 5, 8)), mask=np.ones((4, 4), bool)), ValueError,
           r"attention: mask.shape=\(4, 4\) does not broadcast to \(B, H, Sq, Sk\)=\(2, 2, 5, 5\)")
    raises("TransformerEncoderLayer", "forward_shape", lambda: nn.TransformerEncoderLayer(8, 2, 16)(T(det(1, 2, 5, 4))),
           ValueError, r"MultiheadAttention\(8, 2\): query must be \(batch, seq, 8\), got query.shape=\(2, 5, 4\)")
    for cls in ("RNN", "GRU", "LSTM"):
        raises(cls, "forward_features", lambda cls=cls: getattr(nn, cls)(3, 4)(T(det(1, 2, 5, 4))), ValueError,
               rf"{cls}\(3, 4\): expected input \(batch, time, 3\), got x.shape=\(2, 5, 4\)")
        raises(cls, "forward_2d", lambda cls=cls: getattr(nn, cls)(3, 4)(T(det(1, 5, 3))), ValueError,
               rf"{cls}\(3, 4\): expected input \(batch, time, 3\), got x.shape=\(5, 3\)")
    raises("LSTM", "forward_hc_not_pair", lambda: nn.LSTM(3, 4)(T(det(1, 2, 5, 3)), T(np.zeros((2, 1, 2, 4), np.float32))),
           TypeError, r"LSTM\(3, 4\): hc must be a pair \(h0, c0\)")
    raises("LSTM", "forward_h0_shape", lambda: nn.LSTM(3, 4)(T(det(1, 2, 5, 3)), (T(np.zeros((1, 3, 4), np.float32)), None)),
           ValueError, r"lstm: h0.shape=\(1, 3, 4\), expected \(1, 2, 4\)")
    raises("Sequential", "forward_names_layer", lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2))(T(x2)),
           ValueError, r"Sequential layer 2 \(Linear\): Linear\(5, 2\): input has 4 features \(x.shape=\(4, 4\)\)")
    raises("Sequential", "item_not_module", lambda: nn.Sequential(nn.Linear(3, 4), "relu"), TypeError,
           r"Sequential: item 1 is a str, not a Module")
    out.append(Same("Linear", "forward_views", lambda: _linear_views(nn, T), lambda: _linear_views(nn, T, ref=True)))
    return out


def _backward_of(y, i):
    """Runs y.sum().backward() and returns the gradient of y's i-th parent."""
    y.sum().backward()
    return y._node.parents[i].grad if hasattr(y, "_node") else None


def _linear_views(nn, T, ref=False):
    layer = nn.Linear(6, 3)
    layer.weight.data[...] = det(131, 3, 6)
    layer.bias.data[...] = det(132, 3)
    x = det(130, 6, 4)
    if ref:
        return x.T.astype(np.float64) @ layer.weight.data.T.astype(np.float64) + layer.bias.data
    return layer(T(negstride(x).T)).data


# ---- sizes whose index arithmetic passes 2**31 -------------------------------------------------
# Views and calloc'd (never written, so never resident) buffers keep memory small: a NumPy
# np.zeros of 9 GB costs page tables only, as long as the kernel just reads it.

BIG = 2 ** 31


def _huge_zeros(n, dtype=np.float32):
    return np.zeros(n, dtype)


@group("big")
def _big_cases():
    from numpy.lib.stride_tricks import as_strided
    from bigmodel import ops
    out = []

    def gemm_big_ld(which):
        buf = _huge_zeros(4 * 2 ** 30 + 64)  # rows 2**30 elements apart: row 2 starts at 2**31
        v = as_strided(buf, shape=(4, 8), strides=(2 ** 30 * 4, 4))
        buf[2 * 2 ** 30 + 5] = 3.0  # v[2, 5]
        buf[3 * 2 ** 30 + 7] = -1.0  # v[3, 7]
        e = np.eye(8, dtype=np.float32)
        return ops.gemm(v, e) if which == "a" else ops.gemm(e[:4, :4], v)
    vref = np.zeros((4, 8))
    vref[2, 5], vref[3, 7] = 3.0, -1.0
    out.append(Same("gemm", "lda_past_2_31", lambda: gemm_big_ld("a"), lambda: vref, rtol=0, atol=0))
    out.append(Same("gemm", "ldb_past_2_31", lambda: gemm_big_ld("b"), lambda: vref, rtol=0, atol=0))

    def gemm_batch_stride():
        buf = _huge_zeros(3 * 2 ** 30 + 8)
        buf[2 * 2 ** 30 + 3] = 5.0  # a[2, 1, 1]
        a = as_strided(buf, shape=(3, 2, 2), strides=(2 ** 30 * 4, 8, 4))
        obuf = _huge_zeros(3 * 2 ** 30 + 8)
        o = as_strided(obuf, shape=(3, 2, 2), strides=(2 ** 30 * 4, 8, 4))
        ops.gemm(a, np.eye(2, dtype=np.float32), out=o)
        return o[2].copy(), obuf[2 * 2 ** 30 + 3]
    out.append(Same("gemm", "batch_stride_past_2_31", gemm_batch_stride,
                    lambda: (np.array([[0.0, 0.0], [0.0, 5.0]]), np.float64(5.0)), rtol=0, atol=0))

    # conv2d: input planes past 2**31 elements, read at a few strided pixels
    def conv_big_plane(backward=False):
        H, W = 2 ** 16, 40000
        x = _huge_zeros(H * W).reshape(1, 1, H, W)
        x[0, 0, 61440, 32768] = 3.0  # offset 2.46e9
        w = np.full((1, 1, 1, 1), 2.0, np.float32)
        if backward:
            dy = np.ones((1, 1, 16, 10), np.float32)
            return ops.conv2d_backward(dy, x, w, stride=4096, need_dx=False)[1:]
        return ops.conv2d(x, w, stride=4096)[0, 0, -1]
    out.append(SameOrRaises("conv2d", "plane_past_2_31", conv_big_plane,
                            lambda: np.where(np.arange(10) == 8, 6.0, 0.0), (MemoryError, ValueError), r"conv2d: .*\bx\b"))
    out.append(SameOrRaises("conv2d_backward", "plane_past_2_31", lambda: conv_big_plane(True),
                            lambda: (np.full((1, 1, 1, 1), 3.0), np.array([160.0])), (MemoryError, ValueError),
                            r"conv2d_backward: .*\bx\b"))

    def conv_big_batch():
        N, W = 2 ** 16 + 1, 2 ** 15
        x = _huge_zeros(N * W).reshape(N, 1, 1, W)
        x[-1, 0, 0, 7 * 4096] = 3.0
        return ops.conv2d(x, np.full((1, 1, 1, 1), 2.0, np.float32), stride=(1, 4096))[-2:, 0, 0]
    out.append(SameOrRaises("conv2d", "batch_past_2_31", conv_big_batch,
                            lambda: np.array([[0.0] * 8, [0.0] * 7 + [6.0]]), (MemoryError, ValueError), r"conv2d: .*\bx\b"))

    # pooling over a plane of 2**31 + elements: 2x2 windows 8192 apart (few pixels read), and
    # the global average (all of them)
    def pool_big(kind):
        H, W = 2 ** 16, 40000
        x = _huge_zeros(H * W).reshape(1, 1, H, W)
        x[0, 0, 7 * 8192 + 1, 4 * 8192 + 1] = 5.0  # offset 2.29e9
        if kind == "max":
            y, i = ops.max_pool2d(x, 2, 8192)
            return y[0, 0, -1, -1], i[0, 0, -1, -1], y.sum()
        if kind == "avg":
            y = ops.avg_pool2d(x, 2, 8192)
            return y[0, 0, -1, -1], y.sum()
        x[0, 0, H - 1, W - 1] = 3.0
        return ops.global_avg_pool2d(x)[0, 0, 0, 0]
    out.append(SameOrRaises("max_pool2d", "plane_past_2_31", lambda: pool_big("max"),
                            lambda: (5.0, (7 * 8192 + 1) * 40000 + 4 * 8192 + 1, 5.0), (MemoryError, ValueError),
                            r"max_pool2d: .*\bx\b", rtol=0, atol=0))
    out.append(SameOrRaises("avg_pool2d", "plane_past_2_31", lambda: pool_big("avg"), lambda: (1.25, 1.25),
                            (MemoryError, ValueError), r"avg_pool2d: .*\bx\b", rtol=1e-6, atol=0))
    out.append(SameOrRaises("global_avg_pool2d", "plane_past_2_31", lambda: pool_big("global"),
                            lambda: 8.0 / (2 ** 16 * 40000), (MemoryError, ValueError), r"global_avg_pool2d: .*\bx\b",
                            rtol=1e-3, atol=0))

    # cross-entropy rows: N * C past 2**31 (one pass over calloc'd logits, N losses out)
    def ce_big():
        N, C = 2 ** 16, 2 ** 15 + 1
        lg = _huge_zeros(N * C).reshape(N, C)
        lg[-1, 3] = 10.0
        t = np.zeros(N, np.int64)
        t[-1] = 3
        return ops.cross_entropy(lg, t, reduction="none")[[0, -1]]
    C = 2 ** 15 + 1
    out.append(SameOrRaises("cross_entropy", "rows_past_2_31", ce_big,
                            lambda: np.array([np.log(C), np.log(np.exp(10.0) + C - 1) - 10.0]),
                            (MemoryError, ValueError), r"cross_entropy: .*\blogits\b", rtol=1e-5, atol=1e-5))

    # attention: key/value offsets past 2**31 elements through a huge row stride
    def attn_big():
        Sk, S, D = 2 ** 20, 2 ** 11 + 16, 16
        buf = _huge_zeros(Sk * S + 64)
        k = as_strided(buf, shape=(1, 1, Sk, D), strides=(0, 0, S * 4, 4))
        v = as_strided(buf[32:], shape=(1, 1, Sk, D), strides=(0, 0, S * 4, 4))
        buf[(Sk - 1) * S:(Sk - 1) * S + D] = 1.0       # the last key
        buf[(Sk - 1) * S + 32:(Sk - 1) * S + 32 + D] = 2.0  # the last value
        q = np.ones((1, 1, 1, D), np.float32)
        o, lse = ops.attention(q, k, v, return_lse=True)
        return o[0, 0, 0], lse[0, 0, 0]

    def attn_ref():
        Sk, s = 2 ** 20, 16 * 0.25
        return np.full(16, 2.0 * np.exp(s) / (np.exp(s) + Sk - 1)), np.log(np.exp(s) + Sk - 1)
    out.append(SameOrRaises("attention", "kv_offsets_past_2_31", attn_big, attn_ref, (MemoryError, ValueError),
                            r"attention: .*\b[kv]\b", rtol=1e-4, atol=0))

    # SpMM: x rows at offsets past 2**31 elements (row stride), both directions
    def spmm_big(transpose):
        import scipy.sparse as sp
        n, S = 2 ** 20, 2 ** 11 + 16
        buf = _huge_zeros(n * S + 8, np.float64)
        x = as_strided(buf, shape=(n, 4), strides=(S * 8, 8))
        buf[(n - 1) * S:(n - 1) * S + 4] = [1.0, 2.0, 3.0, 4.0]
        if not transpose:
            a = sp.csr_matrix((np.array([2.0]), np.array([n - 1]), np.array([0, 0, 1])), shape=(2, n))
            return ops.spmm_csr(a, x)
        a = sp.csr_matrix((np.array([2.0]), np.array([1]), np.array([0] * n + [1])), shape=(n, 2))
        return ops.spmm_csr(a, x, transpose=True)
    out.append(SameOrRaises("spmm_csr", "x_rows_past_2_31", lambda: spmm_big(False),
                            lambda: np.array([[0.0] * 4, [2.0, 4.0, 6.0, 8.0]]), (MemoryError, ValueError), r"spmm_csr: .*\bx\b"))
    out.append(SameOrRaises("spmm_csr", "x_rows_past_2_31_transpose", lambda: spmm_big(True),
                            lambda: np.array([[0.0] * 4, [2.0, 4.0, 6.0, 8.0]]), (MemoryError, ValueError), r"spmm_csr: .*\bx\b"))
    return out


@group("big_gemm_k")
def _big_gemm_k_cases():
    """The issue's example: (1, 2**31 + 64) @ (2**31 + 64, 1) from stride-0 operands, exact in
    float64. Slow (tens of seconds): GEMM pads a 1 x 1 product to a whole micro-tile."""
    from bigmodel import ops
    K = BIG + 64
    return [SameOrRaises("gemm", "K_past_2_31", lambda: ops.gemm(np.broadcast_to(np.float64(0.5), (1, K)),
                                                                  np.broadcast_to(np.float64(2.0), (K, 1))),
                         lambda: np.array([[float(K)]]), (MemoryError, ValueError), r"gemm: .*\b[ab]\b",
                         rtol=0, atol=0)]


SLOW_GROUPS = {"big_gemm_k"}


# ---- the child ---------------------------------------------------------------------------------

def _run_group(name):
    import faulthandler
    faulthandler.enable()
    use_cupy_or_emulation()
    cases = GROUPS[name]()
    seen = set()
    for c in cases:
        assert c.id not in seen, f"duplicate case id {c.id}"
        seen.add(c.id)
    n = 0
    for c in cases:
        print(json.dumps({"start": c.id}), flush=True)
        t0 = time.perf_counter()
        try:
            err = c.run()
        except BaseException as e:  # noqa: BLE001  (a harness error is a failure, not a crash)
            err = f"harness error: {type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"
        print(json.dumps({"id": c.id, "op": c.op, "ok": err is None, "msg": err,
                          "s": round(time.perf_counter() - t0, 3)}), flush=True)
        n += 1
    print(json.dumps({"done": n}), flush=True)


def _counts():
    use_cupy_or_emulation()
    total = 0
    for name, fn in GROUPS.items():
        per = {}
        for c in fn():
            per[c.op] = per.get(c.op, 0) + 1
        total += sum(per.values())
        print(f"{name}: {sum(per.values())}  " + ", ".join(f"{k} {v}" for k, v in per.items()))
    print(f"total: {total}")


if __name__ == "__main__":
    if sys.argv[1] == "--counts":
        _counts()
    else:
        _run_group(sys.argv[1])
