// The CUDA extension module bigmodel._cuda: device queries; each kernel family adds its
// functions through bind_cuda_<family>(m), defined in bind_cuda_<family>.cpp. Compiled by the
// host compiler; the kernels live in csrc/cuda/*.cu behind plain C++ headers.
// Importing it needs neither a GPU nor a driver (the CUDA runtime is linked statically):
// device_count() is then 0.
#include <pybind11/pybind11.h>

#include "cuda/gemm.h"

namespace py = pybind11;

void bind_cuda_gemm(py::module_& m);
void bind_cuda_svd(py::module_& m);
void bind_cuda_rnn(py::module_& m);
void bind_cuda_conv(py::module_& m);
void bind_cuda_pool(py::module_& m);
void bind_cuda_attention(py::module_& m);
void bind_cuda_nn(py::module_& m);
void bind_cuda_elementwise(py::module_& m);

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "bigmodel CUDA kernels (run on CuPy arrays through bigmodel.ops)";
  m.def("device_count", &bm::cuda::device_count,
        "Number of visible CUDA devices; 0 when there is no device or no driver.");
  m.def("device_name", &bm::cuda::device_name, py::arg("device") = 0,
        "Name of CUDA device `device` (ValueError when it does not exist).");
  bind_cuda_gemm(m);
  bind_cuda_svd(m);
  bind_cuda_rnn(m);
  bind_cuda_conv(m);
  bind_cuda_pool(m);
  bind_cuda_attention(m);
  bind_cuda_nn(m);
  bind_cuda_elementwise(m);
}
