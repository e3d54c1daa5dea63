// pybind11 glue for the CUDA conv2d kernels: argument checks, GIL release, no math.
//
// Called by python/bigmodel/ops/conv.py on CuPy arrays: device pointers as
// integers (0 = absent), shapes as tuples, dtype as a NumPy name, stream_ptr =
// cupy.cuda.get_current_stream().ptr. The arrays must be C-contiguous and allocated with the
// shapes given (ops/ guarantees both). Bad sizes raise ValueError before anything is launched.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>

#include "bindings/cuda_args.h"
#include "common/check.h"
#include "cuda/conv2d.h"

namespace py = pybind11;
using bm::cuda::DType;

namespace {

using Pair = std::array<int64_t, 2>;
using Shape4 = std::array<int64_t, 4>;

using bm::cuda_args::float_dtype;

std::string shape_str(const Shape4& s) {
  return bm::str_cat("(", s[0], ", ", s[1], ", ", s[2], ", ", s[3], ")");
}

// ---- conv2d ------------------------------------------------------------------------------------

bm::cuda::Conv2dShape conv_shape(const char* op, const Shape4& x, const Shape4& w, Pair out_hw,
                                 Pair stride, Pair pad, Pair dil, int64_t groups) {
  BM_CHECK(groups > 0, op, ": groups must be >= 1, got ", groups);
  BM_CHECK(w[1] * groups == x[1], op, ": weight expects ", w[1] * groups, " input channels, x has ",
           x[1], " (x.shape=", shape_str(x), ", weight.shape=", shape_str(w), ", groups=", groups, ")");
  bm::cuda::Conv2dShape s;
  s.N = x[0], s.C = x[1], s.H = x[2], s.W = x[3];
  s.K = w[0], s.R = w[2], s.S = w[3], s.G = groups;
  s.P = out_hw[0], s.Q = out_hw[1];
  s.stride_h = stride[0], s.stride_w = stride[1], s.pad_h = pad[0], s.pad_w = pad[1];
  s.dil_h = dil[0], s.dil_w = dil[1];
  bm::cuda::conv2d_check_shape(s);
  return s;
}

void* ptr(std::uintptr_t p) { return reinterpret_cast<void*>(p); }

void conv2d_forward(std::uintptr_t x, std::uintptr_t w, std::uintptr_t b, std::uintptr_t y,
                    const Shape4& xs, const Shape4& ws, Pair out_hw, Pair stride, Pair pad,
                    Pair dil, int64_t groups, const std::string& dtype, std::uintptr_t stream) {
  const auto s = conv_shape("conv2d", xs, ws, out_hw, stride, pad, dil, groups);
  const DType dt = float_dtype(dtype, "conv2d");
  py::gil_scoped_release nogil;
  bm::cuda::launch_conv2d_forward(s, dt, ptr(x), ptr(w), b ? ptr(b) : nullptr, ptr(y), stream);
}

void conv2d_backward_data(std::uintptr_t dy, std::uintptr_t w, std::uintptr_t dx, const Shape4& xs,
                          const Shape4& ws, Pair out_hw, Pair stride, Pair pad, Pair dil,
                          int64_t groups, const std::string& dtype, std::uintptr_t stream) {
  const auto s = conv_shape("conv2d_backward", xs, ws, out_hw, stride, pad, dil, groups);
  const DType dt = float_dtype(dtype, "conv2d_backward");
  py::gil_scoped_release nogil;
  bm::cuda::launch_conv2d_backward_data(s, dt, ptr(dy), ptr(w), ptr(dx), stream);
}

int64_t conv2d_backward_weight_workspace(const Shape4& xs, const Shape4& ws, Pair out_hw,
                                         Pair stride, Pair pad, Pair dil, int64_t groups) {
  return bm::cuda::conv2d_backward_weight_workspace(
      conv_shape("conv2d_backward", xs, ws, out_hw, stride, pad, dil, groups));
}

void conv2d_backward_weight(std::uintptr_t dy, std::uintptr_t x, std::uintptr_t dw,
                            std::uintptr_t db, std::uintptr_t workspace, int64_t workspace_elems,
                            const Shape4& xs, const Shape4& ws, Pair out_hw, Pair stride, Pair pad,
                            Pair dil, int64_t groups, const std::string& dtype,
                            std::uintptr_t stream) {
  const auto s = conv_shape("conv2d_backward", xs, ws, out_hw, stride, pad, dil, groups);
  const DType dt = float_dtype(dtype, "conv2d_backward");
  BM_CHECK(workspace_elems >= 0, "conv2d_backward: workspace_elems must be >= 0");
  py::gil_scoped_release nogil;
  bm::cuda::launch_conv2d_backward_weight(s, dt, ptr(dy), ptr(x), dw ? ptr(dw) : nullptr,
                                          db ? ptr(db) : nullptr,
                                          workspace ? ptr(workspace) : nullptr, workspace_elems,
                                          stream);
}

}  // namespace

void bind_cuda_conv(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward, py::arg("x_ptr"), py::arg("w_ptr"), py::arg("b_ptr"),
        py::arg("y_ptr"), py::arg("x_shape"), py::arg("w_shape"), py::arg("out_hw"),
        py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"),
        py::arg("dtype"), py::arg("stream_ptr"),
        "y = conv2d(x, w) + b (b_ptr 0: no bias) on C-contiguous NCHW device arrays; pad = (top, "
        "left), out_hw = (P, Q). Queued on stream_ptr; releases the GIL.");
  m.def("conv2d_backward_data", &conv2d_backward_data, py::arg("dy_ptr"), py::arg("w_ptr"),
        py::arg("dx_ptr"), py::arg("x_shape"), py::arg("w_shape"), py::arg("out_hw"),
        py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"),
        py::arg("dtype"), py::arg("stream_ptr"), "dx of conv2d (overwritten).");
  m.def("conv2d_backward_weight_workspace", &conv2d_backward_weight_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("out_hw"), py::arg("stride"), py::arg("pad"),
        py::arg("dilation"), py::arg("groups"),
        "Elements (of the dtype) of workspace conv2d_backward_weight needs for dw (0: none).");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, py::arg("dy_ptr"), py::arg("x_ptr"),
        py::arg("dw_ptr"), py::arg("db_ptr"), py::arg("workspace_ptr"), py::arg("workspace_elems"),
        py::arg("x_shape"), py::arg("w_shape"), py::arg("out_hw"), py::arg("stride"),
        py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("dtype"),
        py::arg("stream_ptr"), "dw and/or db of conv2d (pointer 0 skips; overwritten).");
}
