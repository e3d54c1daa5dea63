// pybind11 glue for the CUDA element-wise kernels (ReLU, fused SGD and Adam updates): argument
// parsing, GIL release, no math; the launchers (cuda/elementwise.cu) check sizes and pointers.
// Arrays are contiguous device memory passed as integer pointers, as
// python/bigmodel/ops/elementwise.py arranges them.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/cuda_args.h"
#include "cuda/elementwise.h"

namespace py = pybind11;
using bm::cuda_args::float_dtype;

namespace {

const void* cptr(std::uintptr_t p) { return reinterpret_cast<const void*>(p); }
void* mptr(std::uintptr_t p) { return reinterpret_cast<void*>(p); }

}  // namespace

void bind_cuda_elementwise(py::module_& m) {
  m.def("relu_forward", [](std::uintptr_t x, std::uintptr_t y, int64_t n, const std::string& dtype,
                           std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "relu");
    py::gil_scoped_release nogil;
    bm::cuda::launch_relu_forward(cptr(x), mptr(y), n, dt, stream);
  }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("n"), py::arg("dtype"), py::arg("stream_ptr"),
     "y = max(x, 0) over n elements (NaN stays NaN).");
  m.def("relu_backward", [](std::uintptr_t dy, std::uintptr_t x, std::uintptr_t dx, int64_t n,
                            const std::string& dtype, std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "relu_backward");
    py::gil_scoped_release nogil;
    bm::cuda::launch_relu_backward(cptr(dy), cptr(x), mptr(dx), n, dt, stream);
  }, py::arg("dy_ptr"), py::arg("x_ptr"), py::arg("dx_ptr"), py::arg("n"), py::arg("dtype"),
     py::arg("stream_ptr"), "dx = dy where x > 0, else 0.");
  m.def("sgd_update", [](std::uintptr_t w, std::uintptr_t g, std::uintptr_t buf, int64_t n,
                         double lr, double momentum, double weight_decay, bool nesterov,
                         bool first_step, const std::string& dtype, std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "sgd_update");
    py::gil_scoped_release nogil;
    bm::cuda::launch_sgd_update(mptr(w), cptr(g), mptr(buf), n, lr, momentum, weight_decay,
                                nesterov, first_step, dt, stream);
  }, py::arg("w_ptr"), py::arg("g_ptr"), py::arg("buf_ptr"), py::arg("n"), py::arg("lr"),
     py::arg("momentum"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("first_step"),
     py::arg("dtype"), py::arg("stream_ptr"), "One torch.optim.SGD step, in place on w and buf.");
  m.def("adam_update", [](std::uintptr_t w, std::uintptr_t g, std::uintptr_t mm, std::uintptr_t v,
                          int64_t n, double lr, double beta1, double beta2, double eps,
                          double weight_decay, bool decoupled, int64_t step,
                          const std::string& dtype, std::uintptr_t stream) {
    const auto dt = float_dtype(dtype, "adam_update");
    py::gil_scoped_release nogil;
    bm::cuda::launch_adam_update(mptr(w), cptr(g), mptr(mm), mptr(v), n, lr, beta1, beta2, eps,
                                 weight_decay, decoupled, step, dt, stream);
  }, py::arg("w_ptr"), py::arg("g_ptr"), py::arg("m_ptr"), py::arg("v_ptr"), py::arg("n"),
     py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
     py::arg("decoupled"), py::arg("step"), py::arg("dtype"), py::arg("stream_ptr"),
     "One torch.optim.Adam (decoupled=False) or AdamW step, in place on w, m and v.");
}
