// pybind11 glue for the CUDA GEMM: argument checks, GIL release, no math.
//
// gemm(a_ptr, b_ptr, c_ptr, batch, M, N, K, a_strides, b_strides, c_strides, in_dtype, out_dtype,
//      alpha, beta, precision, stream_ptr) as python/bigmodel/ops/gemm.py::_gemm_cuda calls it:
// device pointers as integers, strides as [batch, row, column] in elements (batch stride 0
// broadcasts), dtypes as NumPy names, stream_ptr = cupy.cuda.get_current_stream().ptr.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"
#include "cuda/gemm.h"

namespace py = pybind11;
using bm::cuda::DType;
using bm::cuda::Precision;

namespace {

DType parse_dtype(const std::string& s, const char* name) {
  if (s == "float32") return DType::f32;
  if (s == "float64") return DType::f64;
  if (s == "float16") return DType::f16;
  BM_CHECK(false, "gemm: ", name, " must be 'float16', 'float32' or 'float64', got '", s, "'");
  return DType::f32;
}

Precision parse_precision(const std::string& s) {
  if (s == "native") return Precision::native;
  if (s == "tf32") return Precision::tf32;
  if (s == "bf16") return Precision::bf16;
  if (s == "fp16") return Precision::fp16;
  BM_CHECK(false, "gemm: precision must be 'native', 'tf32', 'bf16' or 'fp16', got '", s, "'");
  return Precision::native;
}

void check_strides(const std::vector<int64_t>& s, const char* name) {
  BM_CHECK(s.size() == 3, "gemm: ", name, " must have 3 entries [batch, row, column], got ", s.size());
}

void gemm(std::uintptr_t a, std::uintptr_t b, std::uintptr_t c, int64_t batch, int64_t M, int64_t N,
          int64_t K, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb,
          const std::vector<int64_t>& sc, const std::string& in_dtype, const std::string& out_dtype,
          double alpha, double beta, const std::string& precision, std::uintptr_t stream) {
  check_strides(sa, "a_strides");
  check_strides(sb, "b_strides");
  check_strides(sc, "c_strides");
  bm::cuda::GemmProblem p;
  p.batch = batch, p.M = M, p.N = N, p.K = K;
  p.A = reinterpret_cast<const void*>(a), p.bs_a = sa[0], p.rs_a = sa[1], p.cs_a = sa[2];
  p.B = reinterpret_cast<const void*>(b), p.bs_b = sb[0], p.rs_b = sb[1], p.cs_b = sb[2];
  p.C = reinterpret_cast<void*>(c), p.bs_c = sc[0], p.rs_c = sc[1], p.cs_c = sc[2];
  p.in_dtype = parse_dtype(in_dtype, "in_dtype");
  p.out_dtype = parse_dtype(out_dtype, "out_dtype");
  p.alpha = alpha, p.beta = beta;
  p.precision = parse_precision(precision);
  // Launch only queues work, but the runtime may block (context creation, a full queue).
  py::gil_scoped_release nogil;
  bm::cuda::launch_gemm_forward(p, stream);
}

}  // namespace

void bind_cuda_gemm(py::module_& m) {
  m.def("gemm", &gemm, py::arg("a_ptr"), py::arg("b_ptr"), py::arg("c_ptr"), py::arg("batch"),
        py::arg("M"), py::arg("N"), py::arg("K"), py::arg("a_strides"), py::arg("b_strides"),
        py::arg("c_strides"), py::arg("in_dtype"), py::arg("out_dtype"), py::arg("alpha"),
        py::arg("beta"), py::arg("precision"), py::arg("stream_ptr"),
        "C[i] = alpha * A[i] @ B[i] + beta * C[i] on device pointers with element strides "
        "[batch, row, column] (batch stride 0 broadcasts), queued on stream_ptr. dtypes: float32 "
        "(precision native/tf32/bf16/fp16), float64 (native), float16 in with float16 or float32 "
        "out (fp16 tensor cores). beta == 0 means C is not read. Releases the GIL.");
}
