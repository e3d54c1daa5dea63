// pybind11 glue for the row-wise kernels (softmax, cross-entropy, layer norm): checks, GIL
// release, no math. Arrays arrive C-contiguous, reduced axis last (ops/nn.py arranges it).
#include "bindings/common.h"
#include "cpu/nn.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

template <typename T>
T* ptr(const py::array& a) { return static_cast<T*>(const_cast<void*>(a.data())); }

template <typename T>
T* opt_ptr(const py::object& o) { return o.is_none() ? nullptr : ptr<T>(o.cast<py::array>()); }

// Checks a is C-contiguous with dtype T and the given shape (-1 = any).
template <typename T>
void check(const py::array& a, const char* name, std::initializer_list<int64_t> shape) {
  BM_CHECK(a.dtype().is(py::dtype::of<T>()), name, ": wrong dtype");
  BM_CHECK(a.flags() & py::array::c_style, name, ": must be C-contiguous");
  BM_CHECK(a.ndim() == static_cast<py::ssize_t>(shape.size()), name, ": expected ", shape.size(),
           "-D, got shape ", shape_str(a));
  int i = 0;
  for (int64_t s : shape) {
    BM_CHECK(s < 0 || a.shape(i) == s, name, ": shape ", shape_str(a), " mismatch on axis ", i);
    ++i;
  }
}

template <typename T>
void softmax_fwd(const py::array& x, py::array& y, bool log) {
  check<T>(x, "x", {-1, -1});
  check<T>(y, "y", {x.shape(0), x.shape(1)});
  const int64_t N = x.shape(0), C = x.shape(1);
  py::gil_scoped_release nogil;
  bm::softmax_forward(ptr<T>(x), ptr<T>(y), N, C, log);
}

template <typename T>
void softmax_bwd(const py::array& dy, const py::array& y, py::array& dx, bool log) {
  check<T>(y, "y", {-1, -1});
  check<T>(dy, "dy", {y.shape(0), y.shape(1)});
  check<T>(dx, "dx", {y.shape(0), y.shape(1)});
  const int64_t N = y.shape(0), C = y.shape(1);
  py::gil_scoped_release nogil;
  bm::softmax_backward(ptr<T>(dy), ptr<T>(y), ptr<T>(dx), N, C, log);
}

void check_targets(const py::array& t, int64_t N, int64_t C, int64_t ignore) {
  check<int64_t>(t, "targets", {N});
  const int64_t* p = static_cast<const int64_t*>(t.data());
  for (int64_t n = 0; n < N; ++n)
    BM_CHECK(p[n] == ignore || (p[n] >= 0 && p[n] < C), "cross_entropy: targets[", n, "] = ",
             p[n], " is out of range for ", C, " classes");
}

template <typename T>
void ce_fwd(const py::array& x, const py::array& t, py::array& loss, int64_t ignore, double eps) {
  check<T>(x, "logits", {-1, -1});
  const int64_t N = x.shape(0), C = x.shape(1);
  check_targets(t, N, C, ignore);
  check<T>(loss, "loss", {N});
  py::gil_scoped_release nogil;
  bm::cross_entropy_forward(ptr<T>(x), ptr<int64_t>(t), ptr<T>(loss), N, C, ignore, T(eps));
}

template <typename T>
void ce_bwd(const py::array& x, const py::array& t, const py::array& w, py::array& dx,
            int64_t ignore, double eps) {
  check<T>(x, "logits", {-1, -1});
  const int64_t N = x.shape(0), C = x.shape(1);
  check_targets(t, N, C, ignore);
  check<T>(w, "grad", {N});
  check<T>(dx, "dlogits", {N, C});
  py::gil_scoped_release nogil;
  bm::cross_entropy_backward(ptr<T>(x), ptr<int64_t>(t), ptr<T>(w), ptr<T>(dx), N, C, ignore,
                             T(eps));
}

template <typename T>
void ln_fwd(const py::array& x, const py::object& w, const py::object& b, py::array& y,
            py::array& mean, py::array& rstd, double eps) {
  check<T>(x, "x", {-1, -1});
  const int64_t N = x.shape(0), D = x.shape(1);
  if (!w.is_none()) check<T>(w.cast<py::array>(), "weight", {D});
  if (!b.is_none()) check<T>(b.cast<py::array>(), "bias", {D});
  check<T>(y, "y", {N, D});
  check<T>(mean, "mean", {N});
  check<T>(rstd, "rstd", {N});
  T *pw = opt_ptr<T>(w), *pb = opt_ptr<T>(b);
  py::gil_scoped_release nogil;
  bm::layer_norm_forward(ptr<T>(x), pw, pb, ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), N, D, T(eps));
}

template <typename T>
void ln_bwd(const py::array& dy, const py::array& x, const py::object& w, const py::array& mean,
            const py::array& rstd, py::array& dx, const py::object& dw, const py::object& db) {
  check<T>(x, "x", {-1, -1});
  const int64_t N = x.shape(0), D = x.shape(1);
  check<T>(dy, "dy", {N, D});
  check<T>(dx, "dx", {N, D});
  check<T>(mean, "mean", {N});
  check<T>(rstd, "rstd", {N});
  if (!w.is_none()) check<T>(w.cast<py::array>(), "weight", {D});
  if (!dw.is_none()) check<T>(dw.cast<py::array>(), "dweight", {D});
  if (!db.is_none()) check<T>(db.cast<py::array>(), "dbias", {D});
  T *pw = opt_ptr<T>(w), *pdw = opt_ptr<T>(dw), *pdb = opt_ptr<T>(db);
  py::gil_scoped_release nogil;
  bm::layer_norm_backward(ptr<T>(dy), ptr<T>(x), pw, ptr<T>(mean), ptr<T>(rstd), ptr<T>(dx), pdw,
                          pdb, N, D);
}

// Picks the float32 / float64 instantiation from the first array's dtype.
#define BM_BY_DTYPE(arr, fn, ...)                                                         \
  do {                                                                                    \
    if (is_dtype<float>(arr)) return fn<float>(__VA_ARGS__);                              \
    if (is_dtype<double>(arr)) return fn<double>(__VA_ARGS__);                            \
    throw py::type_error(std::string(#fn) + ": expected float32 or float64");             \
  } while (0)

}  // namespace

void bind_nn(py::module_& m) {
  m.def("softmax_forward", [](const py::array& x, py::array& y, bool log) {
    BM_BY_DTYPE(x, softmax_fwd, x, y, log);
  }, py::arg("x"), py::arg("y"), py::arg("log"), "Row softmax / log-softmax of x (N, C) into y.");
  m.def("softmax_backward", [](const py::array& dy, const py::array& y, py::array& dx, bool log) {
    BM_BY_DTYPE(y, softmax_bwd, dy, y, dx, log);
  }, py::arg("dy"), py::arg("y"), py::arg("dx"), py::arg("log"));
  m.def("cross_entropy_forward", [](const py::array& x, const py::array& t, py::array& loss,
                                    int64_t ignore, double eps) {
    BM_BY_DTYPE(x, ce_fwd, x, t, loss, ignore, eps);
  }, py::arg("logits"), py::arg("targets"), py::arg("loss"), py::arg("ignore_index"),
     py::arg("label_smoothing"), "Per-row cross-entropy of logits (N, C), int64 targets (N).");
  m.def("cross_entropy_backward", [](const py::array& x, const py::array& t, const py::array& w,
                                     py::array& dx, int64_t ignore, double eps) {
    BM_BY_DTYPE(x, ce_bwd, x, t, w, dx, ignore, eps);
  }, py::arg("logits"), py::arg("targets"), py::arg("grad"), py::arg("dlogits"),
     py::arg("ignore_index"), py::arg("label_smoothing"));
  m.def("layer_norm_forward", [](const py::array& x, const py::object& w, const py::object& b,
                                 py::array& y, py::array& mean, py::array& rstd, double eps) {
    BM_BY_DTYPE(x, ln_fwd, x, w, b, y, mean, rstd, eps);
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("y"), py::arg("mean"),
     py::arg("rstd"), py::arg("eps"));
  m.def("layer_norm_backward", [](const py::array& dy, const py::array& x, const py::object& w,
                                  const py::array& mean, const py::array& rstd, py::array& dx,
                                  const py::object& dw, const py::object& db) {
    BM_BY_DTYPE(x, ln_bwd, dy, x, w, mean, rstd, dx, dw, db);
  }, py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("mean"), py::arg("rstd"),
     py::arg("dx"), py::arg("dweight"), py::arg("dbias"));
}
