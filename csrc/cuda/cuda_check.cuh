// CUDA error checks shared by every .cu file.
//
// BM_CUDA_CHECK(expr) evaluates a CUDA runtime call and, on failure, throws std::runtime_error
// with cudaGetErrorName/cudaGetErrorString, the expression and file:line (llm.c's cudaCheck, but
// throwing: pybind11 turns it into a Python RuntimeError and the interpreter keeps running).
// BM_CUDA_CHECK_LAUNCH() goes right after every <<<...>>> launch: launch-configuration errors are
// only reported through cudaGetLastError.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>

#include "common/check.h"

#define BM_CUDA_CHECK(expr)                                                                  \
  do {                                                                                       \
    const cudaError_t bm_cuda_err_ = (expr);                                                 \
    if (bm_cuda_err_ != cudaSuccess)                                                         \
      throw std::runtime_error(::bm::str_cat("CUDA error ", cudaGetErrorName(bm_cuda_err_),  \
                                             ": ", cudaGetErrorString(bm_cuda_err_), " in ", \
                                             #expr, " [", __FILE__, ":", __LINE__, "]"));    \
  } while (0)

#define BM_CUDA_CHECK_LAUNCH() BM_CUDA_CHECK(cudaGetLastError())
