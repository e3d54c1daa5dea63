// Argument parsing shared by the CUDA bindings of the attention, nn, conv and pool families
// (the GEMM binding has its own): dtype names and fixed-length stride lists, each error a
// ValueError naming the function and the argument.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"
#include "cuda/gemm.h"  // DType

namespace bm::cuda_args {

// "float32" / "float64" (the names str(cupy.ndarray.dtype) gives).
inline bm::cuda::DType float_dtype(const std::string& s, const char* op) {
  if (s == "float32") return bm::cuda::DType::f32;
  if (s == "float64") return bm::cuda::DType::f64;
  BM_CHECK(false, op, ": dtype must be 'float32' or 'float64', got '", s, "'");
  return bm::cuda::DType::f32;
}

inline void copy_strides(const std::vector<int64_t>& s, size_t n, int64_t* dst, const char* op,
                         const char* name) {
  BM_CHECK(s.size() == n, op, ": ", name, " must have ", n, " entries, got ", s.size());
  for (size_t i = 0; i < n; ++i) dst[i] = s[i];
}

}  // namespace bm::cuda_args
