// Fused scaled-dot-product attention on the CPU (FlashAttention-2 style), forward and backward.
//
// Layouts (element strides, last dimension contiguous):
//   q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv)  ->  out (B, H, Sq, Dv), lse (B, H, Sq)
//   mask: none, boolean (uint8, nonzero = may attend) or additive (same dtype as q), read at
//   mask[b*ms[0] + h*ms[1] + i*ms[2] + j*ms[3]] (stride 0 broadcasts, so key padding masks cost
//   nothing). causal: key j is visible to query i iff j <= i (top-left aligned, as torch).
// Rows whose keys are all masked give out = 0 and lse = -inf, and zero gradients.
//
// Variants: attention_avx512.cpp, attention_avx2.cpp (float32: own register-blocked tile
// kernels, vectorised exp), attention.cpp (portable, and the dispatcher). float64 and the
// portable path put the tile products through bm::gemm (single-threaded inside our OpenMP
// region, same active ISA). Body: attention_impl.h.
#pragma once
#include <cstdint>

namespace bm {

enum class MaskKind { none = 0, boolean = 1, additive = 2 };

template <typename T>
struct AttnArgs {
  int64_t B = 0, H = 0, Sq = 0, Sk = 0, D = 0, Dv = 0;
  const T *q = nullptr, *k = nullptr, *v = nullptr;
  int64_t qs[3] = {}, ks[3] = {}, vs[3] = {};  // strides of dims b, h, s (d stride is 1)
  MaskKind mask_kind = MaskKind::none;
  const void* mask = nullptr;
  int64_t ms[4] = {};
  bool causal = false;
  T scale = 1;
  // forward outputs / backward inputs, contiguous: out (B, H, Sq, Dv), lse (B, H, Sq)
  T* out = nullptr;
  T* lse = nullptr;
  // backward: do (B, H, Sq, Dv) contiguous; dq, dk, dv contiguous like q, k, v, zero-filled
  const T* dout = nullptr;
  T *dq = nullptr, *dk = nullptr, *dv = nullptr;
};

template <typename T>
void attention_forward(const AttnArgs<T>& a);
template <typename T>
void attention_backward(const AttnArgs<T>& a);

#define BM_ATTN_DECL(ns)                                   \
  namespace ns {                                           \
  void attention_forward(const AttnArgs<float>& a);        \
  void attention_backward(const AttnArgs<float>& a);       \
  void attention_forward(const AttnArgs<double>& a);       \
  void attention_backward(const AttnArgs<double>& a);      \
  }
BM_ATTN_DECL(portable)
BM_ATTN_DECL(avx2)
BM_ATTN_DECL(avx512)
#undef BM_ATTN_DECL

}  // namespace bm
