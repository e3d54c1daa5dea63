// conv2d on the GPU: forward, backward-data (dx), backward-weight (dW, db). NCHW, fp32 / fp64.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler.
// Layouts (all C-contiguous device memory): x (N, C, H, W), w (K, C/G, R, S), b (K),
// y (N, K, P, Q). Padding is the top/left offset (pad_h, pad_w); bottom/right padding is implied
// by P and Q, as on the CPU (csrc/cpu/conv2d.h), so torch's asymmetric 'same' needs nothing.
//
// Kernels (csrc/cuda/conv2d.cu):
//   conv2d_igemm_kernel   forward and dx as an implicit GEMM: tiles of the virtual im2col matrix
//                         are gathered straight from x (forward) or dy (dx) into shared memory,
//                         never materialised. Forward: M = K/G channels, N = N*P*Q pixels,
//                         reduction C/G*R*S. dx: for each stride phase (h % sh, w % sw) the taps
//                         that reach that phase form a dense correlation of dy with the flipped,
//                         transposed weights: M = C/G, N = N*ceil(H/sh)*ceil(W/sw) pixels,
//                         reduction K/G * taps -- no zero taps are multiplied, no atomics.
//   conv2d_wgrad_kernel   dW as a GEMM dy (K/G x NPQ) . im2col(x)^T (NPQ x C/G*R*S). The long NPQ
//                         reduction is split over blockIdx.z; each split writes its partial to a
//                         workspace that conv2d_wgrad_reduce_kernel sums in a fixed order.
//   conv2d_bias_grad_kernel  db[k] = sum of dy over n, p, q (one block per k, tree reduction).
//   conv2d_depthwise_*    direct loops for C/G == 1 (forward when K/G <= 4, dx always).
// fp32 uses 8x8 register tiles with float4 shared-memory reads (the GEMM's SIMT layout); fp64
// uses 4x4 tiles. Accumulation is in the input type (fp32 / fp64). Every result is
// deterministic: no atomics, fixed reduction orders.
// All launches go on the given stream (CuPy's current stream); nothing allocates device memory.
#pragma once
#include <cstdint>

#include "cuda/gemm.h"  // DType

namespace bm::cuda {

struct Conv2dShape {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t K = 0, R = 0, S = 0;         // output channels, kernel height, width
  int64_t G = 1;                       // groups
  int64_t P = 0, Q = 0;                // output height, width
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
};

// Throws std::invalid_argument (naming the sizes) unless the shape is consistent and fits the
// kernels' 32-bit indexing (each image, weight and N*P*Q / N*H*W below 2^31).
void conv2d_check_shape(const Conv2dShape& s);

// y = conv(x, w) + b (b may be null). dtype f32 or f64.
void launch_conv2d_forward(const Conv2dShape& s, DType dt, const void* x, const void* w,
                           const void* b, void* y, std::uintptr_t stream);

// dx = conv2d's input gradient (overwrites dx).
void launch_conv2d_backward_data(const Conv2dShape& s, DType dt, const void* dy, const void* w,
                                 void* dx, std::uintptr_t stream);

// Elements (of the dtype) of workspace launch_conv2d_backward_weight needs for dW; 0 = none.
int64_t conv2d_backward_weight_workspace(const Conv2dShape& s);

// dw (overwritten; skipped when null), db (overwritten; skipped when null). `workspace` holds
// at least conv2d_backward_weight_workspace(s) elements (may be null when that is 0).
void launch_conv2d_backward_weight(const Conv2dShape& s, DType dt, const void* dy, const void* x,
                                   void* dw, void* db, void* workspace, int64_t workspace_elems,
                                   std::uintptr_t stream);

}  // namespace bm::cuda
