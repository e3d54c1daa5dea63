// Fused scaled-dot-product attention on the GPU (FlashAttention-2 style), forward and backward.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler. Same surface
// as the CPU kernel (cpu/attention.h):
//   q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv): pointer + element strides of the b, h, s
//   dimensions (the d stride is 1) -> out (B, H, Sq, Dv), lse (B, H, Sq), both contiguous.
//   mask_kind 0 none, 1 boolean (uint8, nonzero = may attend), 2 additive (q's dtype), read at
//   mask[b*ms[0] + h*ms[1] + i*ms[2] + j*ms[3]] (stride 0 broadcasts). causal: key j visible to
//   query i iff j <= i (top-left aligned, as torch). Rows whose keys are all hidden give out = 0,
//   lse = -inf and zero gradients. float32 and float64, any D and Dv.
// Backward: dout (B, H, Sq, Dv) and out contiguous; dd (B, H, Sq) is a workspace the caller
// allocates (rowsum(dout * out)); dq, dk, dv contiguous, every element written (no zero fill
// needed). Deterministic: no atomics.
//
// Kernels (attention.cu): attention_forward_kernel (a block of query rows per CTA, K/V tiles in
// shared memory, online softmax), attention_backward_dot_kernel (dd), attention_backward_dq_kernel
// (parallel over query blocks), attention_backward_dkdv_kernel (parallel over key blocks). Each
// is templated on the padded head-dim chunk DC = 32 / 64 / 128 (float64: 32 / 64); larger D or Dv
// are walked in DC-wide chunks (a slower generic path, same kernels).
// Nothing here allocates device memory; everything runs on the given stream.
#pragma once
#include <cstdint>

#include "cuda/gemm.h"  // DType

namespace bm::cuda {

struct AttnProblem {
  int64_t B = 0, H = 0, Sq = 0, Sk = 0, D = 0, Dv = 0;
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  int64_t qs[3] = {}, ks[3] = {}, vs[3] = {};  // element strides of b, h, s
  int mask_kind = 0;
  const void* mask = nullptr;
  int64_t ms[4] = {};
  bool causal = false;
  double scale = 1.0;
  DType dtype = DType::f32;
  void* out = nullptr;  // forward output; backward input (const)
  void* lse = nullptr;  // forward output; backward input (const)
  // backward only
  const void* dout = nullptr;
  void* dd = nullptr;  // workspace (B, H, Sq)
  void *dq = nullptr, *dk = nullptr, *dv = nullptr;
};

// Validate every size, stride and pointer (std::invalid_argument), then queue the kernels on
// `stream` (a cudaStream_t as an integer). CUDA failures throw std::runtime_error.
void launch_attention_forward(const AttnProblem& p, std::uintptr_t stream);
void launch_attention_backward(const AttnProblem& p, std::uintptr_t stream);

}  // namespace bm::cuda
