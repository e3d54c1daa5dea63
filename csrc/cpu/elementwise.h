// Element-wise kernels: activations with their gradients and fused optimizer updates, one pass
// over memory each. Contiguous float32/float64 arrays of n elements.
#pragma once
#include <cstdint>

namespace bm {

template <typename T> void relu_forward(const T* x, T* y, int64_t n);
template <typename T> void relu_backward(const T* dy, const T* x, T* dx, int64_t n);

// torch.optim.SGD step: g' = g + wd*w; buf = momentum*buf + g' (buf = g' on the first step);
// w -= lr * (nesterov ? g' + momentum*buf : buf), or w -= lr*g' without momentum (buf unused).
template <typename T>
void sgd_update(T* w, const T* g, T* buf, int64_t n, double lr, double momentum,
                double weight_decay, bool nesterov, bool first_step);

// torch.optim.Adam / AdamW step t (1-based): decoupled decay (AdamW) scales w by 1 - lr*wd,
// else wd*w is added to g; m, v moment estimates updated in place.
template <typename T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bool decoupled, int64_t step);

}  // namespace bm
