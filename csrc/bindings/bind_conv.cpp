// pybind11 glue for conv2d: argument checks, GIL release, no math. The arrays come from
// bigmodel.ops.conv (C-contiguous, one dtype, outputs allocated there); sizes are checked again
// here before any kernel touches memory.
#include <array>

#include <pybind11/stl.h>

#include "bindings/common.h"
#include "cpu/conv2d.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

using Pair = std::array<int64_t, 2>;

void check_array(const py::array& a, int ndim, const py::dtype& dt, const char* name) {
  check_ndim(a, ndim, name);
  if (!a.dtype().is(dt))
    throw py::type_error(std::string("conv2d: ") + name + " must have dtype " +
                         py::str(dt).cast<std::string>() + ", got " +
                         py::str(a.dtype()).cast<std::string>());
  BM_CHECK(a.flags() & py::array::c_style, "conv2d: ", name, " must be C-contiguous");
}

void check_shape(const py::array& a, std::initializer_list<int64_t> want, const char* name) {
  int i = 0;
  bool ok = true;
  for (int64_t v : want) ok = ok && a.shape(i++) == v;
  std::string w = "(";
  i = 0;
  for (int64_t v : want) w += (i++ ? ", " : "") + std::to_string(v);
  BM_CHECK(ok, "conv2d: ", name, " has shape ", shape_str(a), ", expected ", w, ")");
}

bm::Conv2dParams params(const py::array& x, const std::array<int64_t, 4>& wshape, int64_t P,
                        int64_t Q, Pair stride, Pair pad, Pair dil, int64_t groups, int variant) {
  bm::Conv2dParams p{};
  p.N = x.shape(0); p.C = x.shape(1); p.H = x.shape(2); p.W = x.shape(3);
  p.K = wshape[0]; p.R = wshape[2]; p.S = wshape[3]; p.G = groups;
  p.P = P; p.Q = Q;
  p.stride_h = stride[0]; p.stride_w = stride[1]; p.pad_h = pad[0]; p.pad_w = pad[1];
  p.dil_h = dil[0]; p.dil_w = dil[1]; p.variant = variant;
  BM_CHECK(groups > 0 && p.C % groups == 0 && wshape[1] * groups == p.C,
           "conv2d: weight expects ", wshape[1] * groups, " input channels, x has ", p.C,
           " (x.shape=", shape_str(x), ", groups=", groups, ")");
  bm::conv2d_validate(p);
  return p;
}

std::array<int64_t, 4> shape4(const py::array& a) {
  return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)};
}

template <typename T>
const T* cptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<const T*>(o.cast<py::array>().data());
}
template <typename T>
T* mptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<T*>(o.cast<py::array>().mutable_data());
}

void forward(const py::array& x, const py::array& w, const py::object& b, py::array& y,
             Pair stride, Pair pad, Pair dil, int64_t groups, int variant) {
  const py::dtype dt = x.dtype();
  if (!is_dtype<float>(x) && !is_dtype<double>(x))
    throw py::type_error("conv2d: x must be float32 or float64, got " + py::str(dt).cast<std::string>());
  check_array(x, 4, dt, "x");
  check_array(w, 4, dt, "weight");
  check_array(y, 4, dt, "out");
  check_writeable(y, "out");
  auto p = params(x, shape4(w), y.shape(2), y.shape(3), stride, pad, dil, groups, variant);
  check_shape(y, {p.N, p.K, p.P, p.Q}, "out");
  if (!b.is_none()) {
    check_array(b.cast<py::array>(), 1, dt, "bias");
    check_shape(b.cast<py::array>(), {p.K}, "bias");
  }
  if (is_dtype<float>(x)) {
    const float *px = static_cast<const float*>(x.data()), *pw = static_cast<const float*>(w.data());
    const float* pb = cptr<float>(b);
    float* py_ = static_cast<float*>(y.mutable_data());
    py::gil_scoped_release nogil;
    bm::conv2d_forward<float>(p, px, pw, pb, py_);
  } else {
    const double *px = static_cast<const double*>(x.data()), *pw = static_cast<const double*>(w.data());
    const double* pb = cptr<double>(b);
    double* py_ = static_cast<double*>(y.mutable_data());
    py::gil_scoped_release nogil;
    bm::conv2d_forward<double>(p, px, pw, pb, py_);
  }
}

void backward_data(const py::array& dy, const py::array& w, py::array& dx, Pair stride, Pair pad,
                   Pair dil, int64_t groups, int variant) {
  const py::dtype dt = dy.dtype();
  if (!is_dtype<float>(dy) && !is_dtype<double>(dy))
    throw py::type_error("conv2d_backward: dy must be float32 or float64");
  check_array(dy, 4, dt, "dy");
  check_array(w, 4, dt, "weight");
  check_array(dx, 4, dt, "dx");
  check_writeable(dx, "dx");
  auto p = params(dx, shape4(w), dy.shape(2), dy.shape(3), stride, pad, dil, groups, variant);
  check_shape(dy, {p.N, p.K, p.P, p.Q}, "dy");
  if (is_dtype<float>(dy)) {
    auto *pdy = static_cast<const float*>(dy.data()), *pw = static_cast<const float*>(w.data());
    auto* pdx = static_cast<float*>(dx.mutable_data());
    py::gil_scoped_release nogil;
    bm::conv2d_backward_data<float>(p, pdy, pw, pdx);
  } else {
    auto *pdy = static_cast<const double*>(dy.data()), *pw = static_cast<const double*>(w.data());
    auto* pdx = static_cast<double*>(dx.mutable_data());
    py::gil_scoped_release nogil;
    bm::conv2d_backward_data<double>(p, pdy, pw, pdx);
  }
}

void backward_weight(const py::array& dy, const py::array& x, const py::object& dw,
                     const py::object& db, std::array<int64_t, 4> wshape, Pair stride, Pair pad,
                     Pair dil, int64_t groups, int variant) {
  const py::dtype dt = dy.dtype();
  if (!is_dtype<float>(dy) && !is_dtype<double>(dy))
    throw py::type_error("conv2d_backward: dy must be float32 or float64");
  check_array(dy, 4, dt, "dy");
  check_array(x, 4, dt, "x");
  auto p = params(x, wshape, dy.shape(2), dy.shape(3), stride, pad, dil, groups, variant);
  check_shape(dy, {p.N, p.K, p.P, p.Q}, "dy");
  if (!dw.is_none()) {
    py::array a = dw.cast<py::array>();
    check_array(a, 4, dt, "dw");
    check_writeable(a, "dw");
    check_shape(a, {wshape[0], wshape[1], wshape[2], wshape[3]}, "dw");
  }
  if (!db.is_none()) {
    py::array a = db.cast<py::array>();
    check_array(a, 1, dt, "db");
    check_writeable(a, "db");
    check_shape(a, {p.K}, "db");
  }
  if (is_dtype<float>(dy)) {
    auto *pdy = static_cast<const float*>(dy.data()), *px = static_cast<const float*>(x.data());
    float *pdw = mptr<float>(dw), *pdb = mptr<float>(db);
    py::gil_scoped_release nogil;
    bm::conv2d_backward_weight<float>(p, pdy, px, pdw, pdb);
  } else {
    auto *pdy = static_cast<const double*>(dy.data()), *px = static_cast<const double*>(x.data());
    double *pdw = mptr<double>(dw), *pdb = mptr<double>(db);
    py::gil_scoped_release nogil;
    bm::conv2d_backward_weight<double>(p, pdy, px, pdw, pdb);
  }
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_forward", &forward, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"),
        py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"),
        py::arg("variant") = 0,
        "out = conv2d(x, w) + b on C-contiguous NCHW arrays; pad = (top, left), the output size "
        "comes from out. variant: 0 auto, 1 gemm, 2 small, 3 depthwise. Releases the GIL.");
  m.def("conv2d_backward_data", &backward_data, py::arg("dy"), py::arg("w"), py::arg("dx"),
        py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"),
        py::arg("variant") = 0, "dx = conv2d's input gradient (overwrites dx).");
  m.def("conv2d_backward_weight", &backward_weight, py::arg("dy"), py::arg("x"), py::arg("dw"),
        py::arg("db"), py::arg("wshape"), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
        py::arg("groups"), py::arg("variant") = 0,
        "dw and/or db (None skips) of conv2d (overwritten).");
  m.def("conv2d_variant", [](const py::array& x, std::array<int64_t, 4> wshape, int64_t P,
                             int64_t Q, Pair stride, Pair pad, Pair dil, int64_t groups,
                             int variant) {
    static const char* names[] = {"auto", "gemm", "small", "depthwise"};
    return std::string(names[bm::conv2d_variant(params(x, wshape, P, Q, stride, pad, dil, groups, variant))]);
  }, "The variant conv2d_forward runs for these arguments ('gemm', 'small', 'depthwise').");
}
