// GEMM on the GPU: C = alpha * A·B + beta * C, batched, any element strides.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler.
// Layout: every operand is a pointer plus element strides (BLIS-style), batch-major:
//   A[b] (M, K) at A[b*bs_a + i*rs_a + k*cs_a], B[b] (K, N) at B[b*bs_b + k*rs_b + j*cs_b],
//   C[b] (M, N) at C[b*bs_c + i*rs_c + j*cs_c].
// A transposed view is just swapped strides; a batch stride of 0 broadcasts that operand.
// beta == 0 means C is not read (NaN in C does not propagate).
//
// Variants, picked by dtype and precision (csrc/cuda/gemm.cu, gemm_wmma.cu):
//   float32 native  -> gemm_forward_simt_kernel   (fp32 FFMA, 128x128x16 tiles)
//   float64 native  -> gemm_forward_f64_kernel    (fp64 FMA, 64x64x16 tiles)
//   float32 tf32/bf16/fp16, float16 inputs
//                   -> gemm_forward_wmma_kernel   (tensor cores, fp32 accumulation)
// All kernels run on the given stream (CuPy's current stream); nothing allocates device memory.
#pragma once
#include <cstdint>
#include <string>

namespace bm::cuda {

enum class DType { f16, f32, f64 };
enum class Precision { native, tf32, bf16, fp16 };

struct GemmProblem {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  const void* A = nullptr;
  int64_t bs_a = 0, rs_a = 0, cs_a = 0;
  const void* B = nullptr;
  int64_t bs_b = 0, rs_b = 0, cs_b = 0;
  void* C = nullptr;
  int64_t bs_c = 0, rs_c = 0, cs_c = 0;
  DType in_dtype = DType::f32;   // dtype of A and B
  DType out_dtype = DType::f32;  // dtype of C
  double alpha = 1.0, beta = 0.0;
  Precision precision = Precision::native;
};

// Validates the combination (dtype, precision, sizes) and launches on `stream` (a cudaStream_t
// as an integer; 0 = legacy default stream). Throws std::invalid_argument for bad arguments and
// std::runtime_error for CUDA failures. Returns once the work is queued (asynchronous).
void launch_gemm_forward(const GemmProblem& p, std::uintptr_t stream);

// Devices visible to the CUDA runtime; 0 (not an error) when there is no driver or no device.
int device_count();
std::string device_name(int device);

// Tensor-core launcher (gemm_wmma.cu); called by launch_gemm_forward after validation.
void launch_gemm_forward_wmma(const GemmProblem& p, std::uintptr_t stream);

}  // namespace bm::cuda
