// Row-wise kernels: portable build (body: nn_impl.h) and the run-time ISA dispatcher.
#define BM_ISA_NS portable
#include "cpu/nn_impl.h"

namespace bm {

#if defined(BM_X86)
#define BM_NN_CALL(fn, ...)                                     \
  switch (active_isa()) {                                       \
    case Isa::avx512: return avx512::fn(__VA_ARGS__);           \
    case Isa::avx2: return avx2::fn(__VA_ARGS__);               \
    default: return portable::fn(__VA_ARGS__);                  \
  }
#else
#define BM_NN_CALL(fn, ...) return portable::fn(__VA_ARGS__);
#endif

#define BM_NN_DISPATCH_T(T)                                                                     \
  void softmax_forward(const T* x, T* y, int64_t N, int64_t C, bool log) {                      \
    BM_NN_CALL(softmax_forward, x, y, N, C, log)                                                \
  }                                                                                             \
  void softmax_backward(const T* dy, const T* y, T* dx, int64_t N, int64_t C, bool log) {       \
    BM_NN_CALL(softmax_backward, dy, y, dx, N, C, log)                                          \
  }                                                                                             \
  void cross_entropy_forward(const T* x, const int64_t* t, T* loss, int64_t N, int64_t C,       \
                             int64_t ignore, T eps) {                                           \
    BM_NN_CALL(cross_entropy_forward, x, t, loss, N, C, ignore, eps)                            \
  }                                                                                             \
  void cross_entropy_backward(const T* x, const int64_t* t, const T* w, T* dx, int64_t N,       \
                              int64_t C, int64_t ignore, T eps) {                               \
    BM_NN_CALL(cross_entropy_backward, x, t, w, dx, N, C, ignore, eps)                          \
  }                                                                                             \
  void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd,           \
                          int64_t N, int64_t D, T eps) {                                        \
    BM_NN_CALL(layer_norm_forward, x, w, b, y, mean, rstd, N, D, eps)                           \
  }                                                                                             \
  void layer_norm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd,   \
                           T* dx, T* dw, T* db, int64_t N, int64_t D) {                         \
    BM_NN_CALL(layer_norm_backward, dy, x, w, mean, rstd, dx, dw, db, N, D)                     \
  }
BM_NN_DISPATCH_T(float)
BM_NN_DISPATCH_T(double)

}  // namespace bm
