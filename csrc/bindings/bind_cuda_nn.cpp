// pybind11 glue for the CUDA row-wise kernels (softmax, cross-entropy, layer norm): argument
// parsing, GIL release, no math; the launchers (cuda/nn.cu) check sizes and pointers. Arrays
// are contiguous (N, C) rows on the device, passed as integer pointers (0 = absent / empty),
// as python/bigmodel/ops/nn.py arranges them; targets are int64.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/cuda_args.h"
#include "cuda/nn.h"

namespace py = pybind11;
using bm::cuda_args::float_dtype;

namespace {

template <class P>
const void* cptr(P p) { return reinterpret_cast<const void*>(p); }
template <class P>
void* mptr(P p) { return reinterpret_cast<void*>(p); }

}  // namespace

void bind_cuda_nn(py::module_& m) {
  m.def("softmax_forward", [](std::uintptr_t x, std::uintptr_t y, int64_t N, int64_t C, bool log,
                              const std::string& dtype, std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, log ? "log_softmax" : "softmax");
    py::gil_scoped_release nogil;
    bm::cuda::launch_softmax_forward(cptr(x), mptr(y), N, C, log, dt, stream);
  }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("N"), py::arg("C"), py::arg("log"),
     py::arg("dtype"), py::arg("stream_ptr"), "Row softmax / log-softmax of x (N, C) into y.");
  m.def("softmax_backward", [](std::uintptr_t dy, std::uintptr_t y, std::uintptr_t dx, int64_t N,
                               int64_t C, bool log, const std::string& dtype,
                               std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, log ? "log_softmax_backward" : "softmax_backward");
    py::gil_scoped_release nogil;
    bm::cuda::launch_softmax_backward(cptr(dy), cptr(y), mptr(dx), N, C, log, dt, stream);
  }, py::arg("dy_ptr"), py::arg("y_ptr"), py::arg("dx_ptr"), py::arg("N"), py::arg("C"),
     py::arg("log"), py::arg("dtype"), py::arg("stream_ptr"),
     "dx from the forward output y: softmax y*(dy - <dy, y>), log-softmax dy - exp(y)*sum(dy).");
  m.def("cross_entropy_forward", [](std::uintptr_t x, std::uintptr_t t, std::uintptr_t loss,
                                    int64_t N, int64_t C, int64_t ignore, double eps,
                                    const std::string& dtype, std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "cross_entropy");
    py::gil_scoped_release nogil;
    bm::cuda::launch_cross_entropy_forward(cptr(x), reinterpret_cast<const int64_t*>(t),
                                           mptr(loss), N, C, ignore, eps, dt, stream);
  }, py::arg("logits_ptr"), py::arg("targets_ptr"), py::arg("loss_ptr"), py::arg("N"),
     py::arg("C"), py::arg("ignore_index"), py::arg("label_smoothing"), py::arg("dtype"),
     py::arg("stream_ptr"), "Per-row cross-entropy of logits (N, C) with int64 targets (N).");
  m.def("cross_entropy_backward", [](std::uintptr_t x, std::uintptr_t t, std::uintptr_t w,
                                     std::uintptr_t dx, int64_t N, int64_t C, int64_t ignore,
                                     double eps, const std::string& dtype, std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "cross_entropy_backward");
    py::gil_scoped_release nogil;
    bm::cuda::launch_cross_entropy_backward(cptr(x), reinterpret_cast<const int64_t*>(t), cptr(w),
                                            mptr(dx), N, C, ignore, eps, dt, stream);
  }, py::arg("logits_ptr"), py::arg("targets_ptr"), py::arg("grad_ptr"), py::arg("dlogits_ptr"),
     py::arg("N"), py::arg("C"), py::arg("ignore_index"), py::arg("label_smoothing"),
     py::arg("dtype"), py::arg("stream_ptr"), "d loss / d logits given grad (N) = d total / d loss_i.");
  m.def("layer_norm_forward", [](std::uintptr_t x, std::uintptr_t w, std::uintptr_t b,
                                 std::uintptr_t y, std::uintptr_t mean, std::uintptr_t rstd,
                                 int64_t N, int64_t D, double eps, const std::string& dtype,
                                 std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "layer_norm");
    py::gil_scoped_release nogil;
    bm::cuda::launch_layer_norm_forward(cptr(x), cptr(w), cptr(b), mptr(y), mptr(mean),
                                        mptr(rstd), N, D, eps, dt, stream);
  }, py::arg("x_ptr"), py::arg("weight_ptr"), py::arg("bias_ptr"), py::arg("y_ptr"),
     py::arg("mean_ptr"), py::arg("rstd_ptr"), py::arg("N"), py::arg("D"), py::arg("eps"),
     py::arg("dtype"), py::arg("stream_ptr"),
     "Layer norm of rows x (N, D) into y, saving mean and rstd (N); weight / bias 0 = absent.");
  m.def("layer_norm_backward_workspace", &bm::cuda::layer_norm_backward_workspace, py::arg("N"),
        py::arg("D"), "Elements of the workspace layer_norm_backward needs for dweight/dbias.");
  m.def("layer_norm_backward", [](std::uintptr_t dy, std::uintptr_t x, std::uintptr_t w,
                                  std::uintptr_t mean, std::uintptr_t rstd, std::uintptr_t dx,
                                  std::uintptr_t dw, std::uintptr_t db, std::uintptr_t work,
                                  int64_t work_elems, int64_t N, int64_t D,
                                  const std::string& dtype, std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "layer_norm_backward");
    py::gil_scoped_release nogil;
    bm::cuda::launch_layer_norm_backward(cptr(dy), cptr(x), cptr(w), cptr(mean), cptr(rstd),
                                         mptr(dx), mptr(dw), mptr(db), mptr(work), work_elems, N,
                                         D, dt, stream);
  }, py::arg("dy_ptr"), py::arg("x_ptr"), py::arg("weight_ptr"), py::arg("mean_ptr"),
     py::arg("rstd_ptr"), py::arg("dx_ptr"), py::arg("dweight_ptr"), py::arg("dbias_ptr"),
     py::arg("workspace_ptr"), py::arg("workspace_elems"), py::arg("N"), py::arg("D"),
     py::arg("dtype"), py::arg("stream_ptr"),
     "dx (N, D) and, when their pointers are not 0, dweight / dbias (D) through the workspace "
     "(deterministic partial sums, no atomics).");
}
