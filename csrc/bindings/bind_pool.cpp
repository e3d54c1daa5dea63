// pybind11 glue for pooling: argument checks, GIL release, no math. Arrays come from
// bigmodel.ops.pool (C-contiguous, outputs allocated there); sizes are checked again here.
#include <array>
#include <cstdint>

#include <pybind11/stl.h>

#include "bindings/common.h"
#include "cpu/pool.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

using Pair = std::array<int64_t, 2>;

void check_c(const py::array& a, int ndim, const char* name) {
  check_ndim(a, ndim, name);
  BM_CHECK(a.flags() & py::array::c_style, "pool2d: ", name, " must be C-contiguous");
}

void check_float_pair(const py::array& a, const py::array& b, const char* an, const char* bn) {
  if (!(is_dtype<float>(a) || is_dtype<double>(a)) || !a.dtype().is(b.dtype()))
    throw py::type_error(std::string("pool2d: ") + an + " and " + bn +
                         " must both be float32 or both float64");
}

// x-sized array `big` (N, C, H, W) and output-sized `small` (N, C, P, Q).
bm::Pool2dParams params(const py::array& big, const py::array& small, Pair k, Pair s, Pair pad,
                        bool check_windows = true) {
  check_c(big, 4, "x");
  check_c(small, 4, "y");
  BM_CHECK(big.shape(0) == small.shape(0) && big.shape(1) == small.shape(1),
           "pool2d: batch/channels differ: x ", shape_str(big), ", y ", shape_str(small));
  bm::Pool2dParams p{big.shape(0), big.shape(1), big.shape(2), big.shape(3), small.shape(2),
                     small.shape(3), k[0], k[1], s[0], s[1], pad[0], pad[1]};
  if (check_windows) bm::pool2d_validate(p);
  return p;
}

template <typename T>
void maxfwd(const bm::Pool2dParams& p, const py::array& x, py::array& y, py::object idx) {
  const T* px = static_cast<const T*>(x.data());
  T* py_ = static_cast<T*>(y.mutable_data());
  int64_t* pi = idx.is_none() ? nullptr : static_cast<int64_t*>(idx.cast<py::array>().mutable_data());
  py::gil_scoped_release nogil;
  bm::maxpool2d_forward<T>(p, px, py_, pi);
}

void max_forward(const py::array& x, py::array& y, const py::object& idx, Pair k, Pair s, Pair pad) {
  check_float_pair(x, y, "x", "out");
  check_writeable(y, "out");
  auto p = params(x, y, k, s, pad);
  if (!idx.is_none()) {
    py::array i = idx.cast<py::array>();
    check_c(i, 4, "indices");
    check_writeable(i, "indices");
    if (!is_dtype<int64_t>(i)) throw py::type_error("max_pool2d: indices must be int64");
    BM_CHECK(i.shape(0) == p.N && i.shape(1) == p.C && i.shape(2) == p.P && i.shape(3) == p.Q,
             "max_pool2d: indices has shape ", shape_str(i), ", y ", shape_str(y));
  }
  if (is_dtype<float>(x)) maxfwd<float>(p, x, y, idx);
  else maxfwd<double>(p, x, y, idx);
}

void max_backward(const py::array& dy, const py::array& idx, py::array& dx) {
  const Pair k{1, 1}, s{1, 1}, pad{0, 0};
  check_float_pair(dx, dy, "dx", "dy");
  check_writeable(dx, "dx");
  auto p = params(dx, dy, k, s, pad, /*check_windows=*/false);
  check_c(idx, 4, "indices");
  if (!is_dtype<int64_t>(idx)) throw py::type_error("max_pool2d_backward: indices must be int64");
  BM_CHECK(idx.shape(0) == p.N && idx.shape(1) == p.C && idx.shape(2) == p.P &&
               idx.shape(3) == p.Q,
           "max_pool2d_backward: indices has shape ", shape_str(idx), ", dy ", shape_str(dy));
  const int64_t* pi = static_cast<const int64_t*>(idx.data());
  if (is_dtype<float>(dx)) {
    auto* pdy = static_cast<const float*>(dy.data());
    auto* pdx = static_cast<float*>(dx.mutable_data());
    py::gil_scoped_release nogil;
    bm::maxpool2d_backward<float>(p, pdy, pi, pdx);
  } else {
    auto* pdy = static_cast<const double*>(dy.data());
    auto* pdx = static_cast<double*>(dx.mutable_data());
    py::gil_scoped_release nogil;
    bm::maxpool2d_backward<double>(p, pdy, pi, pdx);
  }
}

void avg_forward(const py::array& x, py::array& y, Pair k, Pair s, Pair pad, bool cip) {
  check_float_pair(x, y, "x", "out");
  check_writeable(y, "out");
  auto p = params(x, y, k, s, pad);
  if (is_dtype<float>(x)) {
    auto* px = static_cast<const float*>(x.data());
    auto* py_ = static_cast<float*>(y.mutable_data());
    py::gil_scoped_release nogil;
    bm::avgpool2d_forward<float>(p, cip, px, py_);
  } else {
    auto* px = static_cast<const double*>(x.data());
    auto* py_ = static_cast<double*>(y.mutable_data());
    py::gil_scoped_release nogil;
    bm::avgpool2d_forward<double>(p, cip, px, py_);
  }
}

void avg_backward(const py::array& dy, py::array& dx, Pair k, Pair s, Pair pad, bool cip) {
  check_float_pair(dx, dy, "dx", "dy");
  check_writeable(dx, "dx");
  auto p = params(dx, dy, k, s, pad);
  if (is_dtype<float>(dx)) {
    auto* pdy = static_cast<const float*>(dy.data());
    auto* pdx = static_cast<float*>(dx.mutable_data());
    py::gil_scoped_release nogil;
    bm::avgpool2d_backward<float>(p, cip, pdy, pdx);
  } else {
    auto* pdy = static_cast<const double*>(dy.data());
    auto* pdx = static_cast<double*>(dx.mutable_data());
    py::gil_scoped_release nogil;
    bm::avgpool2d_backward<double>(p, cip, pdy, pdx);
  }
}

// x (N, C, H, W) <-> y (N, C, 1, 1); forward reads x and writes y, backward the reverse.
void global_avg(py::array& x, py::array& y, bool backward) {
  check_float_pair(x, y, "x", "y");
  check_c(x, 4, "x");
  check_c(y, 4, "y");
  BM_CHECK(y.shape(0) == x.shape(0) && y.shape(1) == x.shape(1) && y.shape(2) == 1 &&
               y.shape(3) == 1,
           "global_avg_pool2d: shapes ", shape_str(x), " and ", shape_str(y), " do not match");
  check_writeable(backward ? x : y, backward ? "dx" : "out");
  const int64_t planes = x.shape(0) * x.shape(1), HW = x.shape(2) * x.shape(3);
  // Only the output is written: the input (x forward, dy backward) may be read-only.
  void* xp = backward ? x.mutable_data() : const_cast<void*>(x.data());
  void* yp = backward ? const_cast<void*>(y.data()) : y.mutable_data();
  if (is_dtype<float>(x)) {
    float *px = static_cast<float*>(xp), *py_ = static_cast<float*>(yp);
    py::gil_scoped_release nogil;
    if (backward) bm::global_avgpool2d_backward<float>(planes, HW, py_, px);
    else bm::global_avgpool2d_forward<float>(planes, HW, px, py_);
  } else {
    double *px = static_cast<double*>(xp), *py_ = static_cast<double*>(yp);
    py::gil_scoped_release nogil;
    if (backward) bm::global_avgpool2d_backward<double>(planes, HW, py_, px);
    else bm::global_avgpool2d_forward<double>(planes, HW, px, py_);
  }
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_forward, py::arg("x"), py::arg("out"), py::arg("indices"),
        py::arg("kernel"), py::arg("stride"), py::arg("pad"),
        "out (and int64 indices unless None) = max pooling of x. Releases the GIL.");
  m.def("max_pool2d_backward", &max_backward, py::arg("dy"), py::arg("indices"), py::arg("dx"),
        "dx = 0, then dx[n, c].flat[indices] += dy (indices checked against the plane).");
  m.def("avg_pool2d_forward", &avg_forward, py::arg("x"), py::arg("out"), py::arg("kernel"),
        py::arg("stride"), py::arg("pad"), py::arg("count_include_pad"));
  m.def("avg_pool2d_backward", &avg_backward, py::arg("dy"), py::arg("dx"), py::arg("kernel"),
        py::arg("stride"), py::arg("pad"), py::arg("count_include_pad"));
  m.def("global_avg_pool2d_forward", [](py::array x, py::array y) { global_avg(x, y, false); },
        py::arg("x"), py::arg("out"));
  m.def("global_avg_pool2d_backward", [](py::array dy, py::array dx) { global_avg(dx, dy, true); },
        py::arg("dy"), py::arg("dx"));
}
