// Element-wise kernels on the GPU, with the CPU kernels' semantics (cpu/elementwise.h): ReLU and
// its gradient, the fused SGD (momentum, Nesterov, weight decay) and Adam / AdamW updates, one
// pass over memory each, in place on the parameters and optimizer state. Contiguous arrays of
// n elements, float32 or float64, device memory; everything runs on `stream`.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler. Kernels:
// elementwise.cu (grid-stride loops, 64-bit indices, no atomics).
#pragma once
#include <cstdint>

#include "cuda/gemm.h"  // DType

namespace bm::cuda {

// y = max(x, 0); NaN stays NaN (as torch.relu).
void launch_relu_forward(const void* x, void* y, int64_t n, DType dtype, std::uintptr_t stream);
// dx = dy where x > 0, else 0 (a NaN x gives 0).
void launch_relu_backward(const void* dy, const void* x, void* dx, int64_t n, DType dtype,
                          std::uintptr_t stream);
// torch.optim.SGD: g' = g + wd w; buf = first_step ? g' : momentum buf + g';
// w -= lr (nesterov ? g' + momentum buf : buf). With momentum 0: w -= lr g' (buf unused).
void launch_sgd_update(void* w, const void* g, void* buf, int64_t n, double lr, double momentum,
                       double weight_decay, bool nesterov, bool first_step, DType dtype,
                       std::uintptr_t stream);
// torch.optim.Adam (decoupled = false: L2 added to g) or AdamW (decoupled: w *= 1 - lr wd),
// bias-corrected with step >= 1.
void launch_adam_update(void* w, const void* g, void* m, void* v, int64_t n, double lr,
                        double beta1, double beta2, double eps, double weight_decay,
                        bool decoupled, int64_t step, DType dtype, std::uintptr_t stream);

}  // namespace bm::cuda
