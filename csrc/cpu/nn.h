// Row-wise Transformer pieces on the CPU, each one fused pass over memory, with backward:
// softmax / log-softmax, cross-entropy (integer targets, ignore_index, label smoothing) and
// layer norm. Every op works on contiguous rows: x (N, C) with the reduced axis last (ops/
// moves the axis there). OpenMP over rows; the exp is cpu/vmath.h's.
//
// Variants: nn_avx512.cpp, nn_avx2.cpp, nn.cpp (portable + dispatcher), body in nn_impl.h.
#pragma once
#include <cstdint>

namespace bm {

#define BM_NN_DECL_T(T)                                                                         \
  void softmax_forward(const T* x, T* y, int64_t N, int64_t C, bool log);                       \
  void softmax_backward(const T* dy, const T* y, T* dx, int64_t N, int64_t C, bool log);        \
  /* loss (N): per-row loss, 0 where target == ignore */                                        \
  void cross_entropy_forward(const T* x, const int64_t* t, T* loss, int64_t N, int64_t C,       \
                             int64_t ignore, T smoothing);                                      \
  /* w (N): d total / d loss_i; dx (N, C) */                                                    \
  void cross_entropy_backward(const T* x, const int64_t* t, const T* w, T* dx, int64_t N,       \
                              int64_t C, int64_t ignore, T smoothing);                          \
  /* y (N, D); mean, rstd (N). weight, bias (D) may be null */                                  \
  void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd,           \
                          int64_t N, int64_t D, T eps);                                         \
  /* dx (N, D); dw, db (D) may be null */                                                       \
  void layer_norm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd,   \
                           T* dx, T* dw, T* db, int64_t N, int64_t D);

BM_NN_DECL_T(float)
BM_NN_DECL_T(double)
namespace portable { BM_NN_DECL_T(float) BM_NN_DECL_T(double) }
namespace avx2 { BM_NN_DECL_T(float) BM_NN_DECL_T(double) }
namespace avx512 { BM_NN_DECL_T(float) BM_NN_DECL_T(double) }

}  // namespace bm
