"""A NumPy-backed stand-in for the parts of CuPy the bigmodel tests use, so that the CUDA test
file and the binding contract run against the host emulation of the kernels."""
import numpy as _np
from . import cuda  # noqa: F401

float16, float32, float64, nan = _np.float16, _np.float32, _np.float64, _np.nan


class _Ptr:
    def __init__(self, ptr):
        self.ptr = ptr


class ndarray(_np.ndarray):
    @property
    def data(self):
        return _Ptr(self.__array_interface__["data"][0])


ndarray.__module__ = "cupy"


def _rewrap(r):
    if type(r) is _np.ndarray:
        return r.view(ndarray)
    if isinstance(r, (tuple, list)):
        return type(r)(_rewrap(x) for x in r)
    return r


def _array_function(self, func, types, args, kwargs):
    # CuPy implements NumPy's __array_function__: np.broadcast_to(cupy_array), np.swapaxes(...)
    # return CuPy arrays. NumPy's default for a subclass may return a base ndarray
    # (subok=False functions), so results are wrapped back here.
    return _rewrap(_np.ndarray.__array_function__(self, func, types, args, kwargs))


ndarray.__array_function__ = _array_function


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    # Real CuPy refuses host arrays in its ufuncs (TypeError: Unsupported type
    # <class 'numpy.ndarray'>): a device array times a host mask must fail here as on a GPU.
    # NumPy scalars and Python numbers are accepted, as CuPy does.
    for a in inputs + tuple(kwargs.get("out", ())):
        if isinstance(a, _np.ndarray) and not isinstance(a, ndarray):
            raise TypeError(f"Unsupported type {type(a)} (fake CuPy: a NumPy array in "
                            f"cupy.{ufunc.__name__})")
    args = tuple(a.view(_np.ndarray) if isinstance(a, ndarray) else a for a in inputs)
    if "out" in kwargs:
        kwargs["out"] = tuple(a.view(_np.ndarray) for a in kwargs["out"])
    return _rewrap(getattr(ufunc, method)(*args, **kwargs))


ndarray.__array_ufunc__ = _array_ufunc


def _wrap(x):
    return _np.asarray(x).view(ndarray)


def asarray(x, dtype=None):
    return _np.array(x, dtype=dtype).view(ndarray)


def asnumpy(x):
    return _np.array(x).view(_np.ndarray)


def empty(shape, dtype=float32):
    return _wrap(_np.empty(shape, dtype))


def zeros(shape, dtype=float32):
    return _wrap(_np.zeros(shape, dtype))


def full(shape, v, dtype=float32):
    return _wrap(_np.full(shape, v, dtype))


def isfinite(x):
    return _wrap(_np.isfinite(x))


swapaxes = _np.swapaxes
may_share_memory = _np.may_share_memory


def matmul(a, b, out=None):
    r = _np.matmul(a, b)
    if out is None:
        return _wrap(r)
    out[...] = r
    return out


# Tensor.numpy() / Module.to('cpu') copy device arrays back with .get(), as CuPy does.
ndarray.get = lambda self, stream=None: _np.array(self).view(_np.ndarray)


# ---- truncated SVD (bigmodel.ops.svd on CuPy): NumPy-backed module functions ------------------
# Added only where missing: other families append to this file too.
import types as _types  # noqa: E402


def _wrapped(f):
    def g(*args, **kwargs):
        r = f(*args, **kwargs)
        return tuple(_wrap(x) for x in r) if isinstance(r, tuple) else _wrap(r)
    return g


for _name in ("abs", "argmax", "sign", "arange", "hstack", "ascontiguousarray", "sqrt", "diff",
              "ones", "maximum", "concatenate", "zeros_like", "empty_like"):
    globals().setdefault(_name, _wrapped(getattr(_np, _name)))
for _name in ("int32", "int64", "uint8", "bool_"):
    globals().setdefault(_name, getattr(_np, _name))
linalg = globals().get("linalg") or _types.SimpleNamespace()
for _name in ("norm", "qr", "svd", "eigh", "cholesky"):
    if not hasattr(linalg, _name):
        setattr(linalg, _name, _wrapped(getattr(_np.linalg, _name)))


# ---- added for the RNN tests (ops/rnn.py reads arrays through __cuda_array_interface__) --------
if not hasattr(ndarray, "__cuda_array_interface__"):
    def _cai(self):
        ai = self.__array_interface__
        return {"shape": self.shape, "typestr": self.dtype.str, "data": ai["data"],
                "strides": None if self.flags.c_contiguous else self.strides, "version": 3,
                "stream": 1}

    ndarray.__cuda_array_interface__ = property(_cai)

if "ascontiguousarray" not in globals():
    def ascontiguousarray(x, dtype=None):
        return _wrap(_np.ascontiguousarray(x, dtype=dtype))

if "empty_like" not in globals():
    def empty_like(x, dtype=None):
        return _wrap(_np.empty_like(x, dtype=dtype))

if "int64" not in globals():
    int64 = _np.int64


# ---- added for the conv/pool tests (tests/test_conv_cuda.py) ----
int32, int64 = _np.int32, _np.int64


def ascontiguousarray(x, dtype=None):
    return _np.ascontiguousarray(x, dtype=dtype).view(ndarray)


# ---- used by ops/attention.py and ops/nn.py (CUDA attention / nn tests) ----
int64, uint8, bool_ = _np.int64, _np.uint8, _np.bool_


def ascontiguousarray(x, dtype=None):
    return _wrap(_np.ascontiguousarray(x, dtype=dtype))


def moveaxis(x, src, dst):
    return _wrap(_np.moveaxis(x, src, dst))


def broadcast_to(x, shape):
    return _wrap(_np.broadcast_to(x, shape))


def empty_like(x, dtype=None):
    return _wrap(_np.empty_like(x, dtype=dtype))


def ones(shape, dtype=float32):
    return _wrap(_np.ones(shape, dtype))


# ---- anything else NumPy has (Tensor / functional / optim on CuPy arrays, tests/test_train_cuda.py):
# CuPy mirrors the NumPy namespace, so a missing name falls back to NumPy's, results wrapped.
def __getattr__(name):
    f = getattr(_np, name)
    if callable(f) and not isinstance(f, type):
        return lambda *a, **k: _rewrap(f(*a, **k))
    return f
