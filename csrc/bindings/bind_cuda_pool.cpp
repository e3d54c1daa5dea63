// pybind11 glue for the CUDA pooling kernels: argument checks, GIL release, no math.
//
// Called by python/bigmodel/ops/pool.py on CuPy arrays: device pointers as
// integers (0 = absent), shapes as tuples, dtype as a NumPy name, stream_ptr =
// cupy.cuda.get_current_stream().ptr. The arrays must be C-contiguous and allocated with the
// shapes given (ops/ guarantees both). Bad sizes raise ValueError before anything is launched.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "bindings/cuda_args.h"
#include "common/check.h"
#include "cuda/pool.h"

namespace py = pybind11;
using bm::cuda::DType;

namespace {

using Pair = std::array<int64_t, 2>;
using Shape4 = std::array<int64_t, 4>;

using bm::cuda_args::float_dtype;

void* ptr(std::uintptr_t p) { return reinterpret_cast<void*>(p); }

bm::cuda::Pool2dShape pool_shape(const Shape4& x, Pair out_hw, Pair k, Pair s, Pair pad) {
  bm::cuda::Pool2dShape p;
  p.N = x[0], p.C = x[1], p.H = x[2], p.W = x[3], p.P = out_hw[0], p.Q = out_hw[1];
  p.kh = k[0], p.kw = k[1], p.sh = s[0], p.sw = s[1], p.ph = pad[0], p.pw = pad[1];
  return p;
}

void max_pool2d_forward(std::uintptr_t x, std::uintptr_t y, std::uintptr_t idx, const Shape4& xs,
                        Pair out_hw, Pair k, Pair s, Pair pad, const std::string& dtype,
                        std::uintptr_t stream) {
  const auto p = pool_shape(xs, out_hw, k, s, pad);
  bm::cuda::pool2d_check_shape(p, true, "max_pool2d");
  const DType dt = float_dtype(dtype, "max_pool2d");
  py::gil_scoped_release nogil;
  bm::cuda::launch_maxpool2d_forward(p, dt, ptr(x), ptr(y),
                                     idx ? static_cast<int64_t*>(ptr(idx)) : nullptr, stream);
}

void max_pool2d_backward(std::uintptr_t dy, std::uintptr_t idx, std::uintptr_t dx,
                         const Shape4& xs, Pair out_hw, std::optional<Pair> k,
                         std::optional<Pair> s, std::optional<Pair> pad, const std::string& dtype,
                         std::uintptr_t stream) {
  const bool window = k.has_value();
  BM_CHECK(window == s.has_value() && window == pad.has_value(),
           "max_pool2d_backward: kernel, stride and pad must be given together or not at all");
  const auto p = pool_shape(xs, out_hw, k.value_or(Pair{1, 1}), s.value_or(Pair{1, 1}),
                            pad.value_or(Pair{0, 0}));
  bm::cuda::pool2d_check_shape(p, window, "max_pool2d_backward");
  const DType dt = float_dtype(dtype, "max_pool2d_backward");
  py::gil_scoped_release nogil;
  bm::cuda::launch_maxpool2d_backward(p, window, dt, ptr(dy), static_cast<const int64_t*>(ptr(idx)),
                                      ptr(dx), stream);
}

void avg_pool2d(std::uintptr_t src, std::uintptr_t dst, const Shape4& xs, Pair out_hw, Pair k,
                Pair s, Pair pad, bool cip, const std::string& dtype, std::uintptr_t stream,
                bool backward) {
  const char* op = backward ? "avg_pool2d_backward" : "avg_pool2d";
  const auto p = pool_shape(xs, out_hw, k, s, pad);
  bm::cuda::pool2d_check_shape(p, true, op);
  const DType dt = float_dtype(dtype, op);
  py::gil_scoped_release nogil;
  if (backward) bm::cuda::launch_avgpool2d_backward(p, cip, dt, ptr(src), ptr(dst), stream);
  else bm::cuda::launch_avgpool2d_forward(p, cip, dt, ptr(src), ptr(dst), stream);
}

void global_avg_pool2d(std::uintptr_t src, std::uintptr_t dst, int64_t planes, int64_t HW,
                       const std::string& dtype, std::uintptr_t stream, bool backward) {
  const char* op = backward ? "global_avg_pool2d_backward" : "global_avg_pool2d";
  BM_CHECK(planes >= 0 && HW > 0, op, ": planes must be >= 0 and HW > 0, got planes=", planes,
           " HW=", HW);
  const DType dt = float_dtype(dtype, op);
  py::gil_scoped_release nogil;
  if (backward) bm::cuda::launch_global_avgpool2d_backward(planes, HW, dt, ptr(src), ptr(dst), stream);
  else bm::cuda::launch_global_avgpool2d_forward(planes, HW, dt, ptr(src), ptr(dst), stream);
}

}  // namespace

void bind_cuda_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x_ptr"), py::arg("y_ptr"),
        py::arg("indices_ptr"), py::arg("x_shape"), py::arg("out_hw"), py::arg("kernel"),
        py::arg("stride"), py::arg("pad"), py::arg("dtype"), py::arg("stream_ptr"),
        "y (and int64 indices unless indices_ptr is 0) = max pooling of x.");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("dy_ptr"), py::arg("indices_ptr"),
        py::arg("dx_ptr"), py::arg("x_shape"), py::arg("out_hw"), py::arg("kernel").none(true),
        py::arg("stride").none(true), py::arg("pad").none(true), py::arg("dtype"),
        py::arg("stream_ptr"),
        "dx of max pooling. With kernel/stride/pad: per-pixel gather over its windows; without: "
        "per-plane scatter. Indices outside the plane (or their window) are ignored.");
  m.def("avg_pool2d_forward",
        [](std::uintptr_t x, std::uintptr_t y, const Shape4& xs, Pair out_hw, Pair k, Pair s,
           Pair pad, bool cip, const std::string& dtype, std::uintptr_t stream) {
          avg_pool2d(x, y, xs, out_hw, k, s, pad, cip, dtype, stream, false);
        },
        py::arg("x_ptr"), py::arg("y_ptr"), py::arg("x_shape"), py::arg("out_hw"),
        py::arg("kernel"), py::arg("stride"), py::arg("pad"), py::arg("count_include_pad"),
        py::arg("dtype"), py::arg("stream_ptr"));
  m.def("avg_pool2d_backward",
        [](std::uintptr_t dy, std::uintptr_t dx, const Shape4& xs, Pair out_hw, Pair k, Pair s,
           Pair pad, bool cip, const std::string& dtype, std::uintptr_t stream) {
          avg_pool2d(dy, dx, xs, out_hw, k, s, pad, cip, dtype, stream, true);
        },
        py::arg("dy_ptr"), py::arg("dx_ptr"), py::arg("x_shape"), py::arg("out_hw"),
        py::arg("kernel"), py::arg("stride"), py::arg("pad"), py::arg("count_include_pad"),
        py::arg("dtype"), py::arg("stream_ptr"));
  m.def("global_avg_pool2d_forward",
        [](std::uintptr_t x, std::uintptr_t y, int64_t planes, int64_t HW, const std::string& dtype,
           std::uintptr_t stream) { global_avg_pool2d(x, y, planes, HW, dtype, stream, false); },
        py::arg("x_ptr"), py::arg("y_ptr"), py::arg("planes"), py::arg("HW"), py::arg("dtype"),
        py::arg("stream_ptr"));
  m.def("global_avg_pool2d_backward",
        [](std::uintptr_t dy, std::uintptr_t dx, int64_t planes, int64_t HW,
           const std::string& dtype, std::uintptr_t stream) {
          global_avg_pool2d(dy, dx, planes, HW, dtype, stream, true);
        },
        py::arg("dy_ptr"), py::arg("dx_ptr"), py::arg("planes"), py::arg("HW"), py::arg("dtype"),
        py::arg("stream_ptr"));
}
