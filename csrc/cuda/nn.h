// Row-wise Transformer pieces on the GPU, forward and backward (torch semantics, as cpu/nn.h):
// softmax / log-softmax, cross-entropy (int64 targets, ignore_index, label smoothing) and layer
// norm. Every op works on contiguous rows x (N, C) with the reduced axis last (ops/nn.py moves
// it there); float32 or float64; pointers are device memory.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler. Kernels:
// nn.cu. Nothing here allocates device memory: layer_norm_backward's partial sums come in a
// workspace of layer_norm_backward_workspace(N, D) elements. Everything runs on `stream`.
// Deterministic: no atomics (dweight / dbias are per-row-chunk partials then a fixed-order sum).
#pragma once
#include <cstdint>

#include "cuda/gemm.h"  // DType

namespace bm::cuda {

void launch_softmax_forward(const void* x, void* y, int64_t N, int64_t C, bool log, DType dtype,
                            std::uintptr_t stream);
void launch_softmax_backward(const void* dy, const void* y, void* dx, int64_t N, int64_t C,
                             bool log, DType dtype, std::uintptr_t stream);
// loss (N): per-row loss, 0 where target == ignore (NaN for a target outside [0, C)).
void launch_cross_entropy_forward(const void* x, const int64_t* t, void* loss, int64_t N,
                                  int64_t C, int64_t ignore, double smoothing, DType dtype,
                                  std::uintptr_t stream);
// w (N): d total / d loss_i; dx (N, C).
void launch_cross_entropy_backward(const void* x, const int64_t* t, const void* w, void* dx,
                                   int64_t N, int64_t C, int64_t ignore, double smoothing,
                                   DType dtype, std::uintptr_t stream);
// y (N, D); mean, rstd (N); weight, bias (D) may be null.
void launch_layer_norm_forward(const void* x, const void* w, const void* b, void* y, void* mean,
                               void* rstd, int64_t N, int64_t D, double eps, DType dtype,
                               std::uintptr_t stream);
// Elements (of the dtype) of the workspace layer_norm_backward needs when dw or db is wanted.
int64_t layer_norm_backward_workspace(int64_t N, int64_t D);
// dx (N, D); dw, db (D) may be null (then `work` may be null too).
void launch_layer_norm_backward(const void* dy, const void* x, const void* w, const void* mean,
                                const void* rstd, void* dx, void* dw, void* db, void* work,
                                int64_t work_elems, int64_t N, int64_t D, DType dtype,
                                std::uintptr_t stream);

}  // namespace bm::cuda
