// conv2d on the CPU: forward, backward-data (dx), backward-weight (dW, db).
//
// Layouts: x (N, C, H, W), w (K, C/G, R, S), b (K), y (N, K, P, Q), all C-contiguous. Padding is
// given as top/left offsets (pad_h, pad_w); bottom/right padding is implied by P and Q, which the
// caller computes (so torch's asymmetric 'same' padding needs nothing special).
//
// Variants, picked per call by conv2d_variant() (ops.conv2d's algo= forces one; tests run all):
//   gemm      any shape. Portable / AVX2: im2col tiles of at most ~256 KiB per thread feeding
//             bm::gemm (1x1 stride-1 unpadded convolutions read x directly). AVX-512 (float,
//             conv2d_avx512.cpp), no packing anywhere:
//               stride 1, >= 2 images x groups per thread: the padded image is the im2col matrix
//                 ("virtual pixels": each tap's 48 pixels are one load at xpad + offset); forward
//                 with row-exact panels (rows >= 16) or compressed stores; dW reduces over pixels
//                 with dy^T (16x16 register transposes) as the vector operand and db on the way;
//                 dx adds W^T x dy panels into a padded dx (maps that fit L2) or runs as the
//                 forward conv of dy with flipped, transposed weights;
//               otherwise im2col tiles used as they are by 8x48 (forward) and 6..12x64 (dW)
//                 micro-kernels; stride-1 dx as the forward conv.
//   small     first layers (groups 1, C*R*S <= 27): the C*R*S input taps of 16 output pixels stay
//             in registers while every output channel is produced from them; dW (+ db) with
//             register accumulators per tile (AVX-512 in conv2d_avx512.cpp, portable here). dx
//             goes through gemm (a first layer rarely needs it).
//   depthwise one input channel per output channel (C/G == 1): direct loops over rows,
//             vectorised along the output row (all ISAs; not tuned).
// Threads: OpenMP over images x groups x pixel tiles, bm::num_threads() threads; dW keeps one
// partial copy of the weights per thread, summed at the end. Sizes are int64 throughout.
#pragma once
#include <cstdint>

namespace bm {

struct Conv2dParams {
  int64_t N, C, H, W;   // input
  int64_t K, R, S;      // output channels, kernel height, width
  int64_t G;            // groups
  int64_t P, Q;         // output height, width
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int variant = 0;      // 0 auto, 1 gemm, 2 small, 3 depthwise (tests force each; a variant
                        // that does not apply to the shape falls back to gemm)
  int64_t Cg() const { return C / G; }
  int64_t Kg() const { return K / G; }
};

// Throws std::invalid_argument unless every size is positive and consistent (P and Q included).
void conv2d_validate(const Conv2dParams& p);

// The variant conv2d_forward will use: 1 gemm, 2 small, 3 depthwise.
int conv2d_variant(const Conv2dParams& p);

// y = conv(x, w) + b (b may be null).
template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y);

// dx = conv_transpose(dy, w): overwrites dx.
template <typename T>
void conv2d_backward_data(const Conv2dParams& p, const T* dy, const T* w, T* dx);

// dw = sum over n of dy ⋆ x (overwrites; skipped when dw is null); db = sum of dy over n, p, q
// (overwrites; skipped when null).
template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, const T* dy, const T* x, T* dw, T* db);

namespace avx512 {
// Small-C first-layer kernels (float only); return false if the shape is not handled. The dW
// kernel also computes db (when not null) from the tiles of dy it already reads.
bool conv2d_small_forward(const Conv2dParams& p, const float* x, const float* w, const float* b,
                          float* y);
bool conv2d_small_backward_weight(const Conv2dParams& p, const float* dy, const float* x,
                                  float* dw, float* db);
// The gemm variant's implicit-GEMM kernels (any shape; float only). The dW kernel returns true
// when it also computed db (if not null).
void conv2d_gemm_forward(const Conv2dParams& p, const float* x, const float* w, const float* b,
                         float* y);
bool conv2d_gemm_backward_weight(const Conv2dParams& p, const float* dy, const float* x, float* dw,
                                 float* db);
// Stride-1 kernels without im2col (enough images x groups to keep every thread busy).
bool conv2d_direct_applies(const Conv2dParams& p);
void conv2d_direct_forward(const Conv2dParams& p, const float* x, const float* w, const float* b,
                           float* y);
void conv2d_direct_backward_weight(const Conv2dParams& p, const float* dy, const float* x,
                                   float* dw, float* db);
void conv2d_direct_backward_data(const Conv2dParams& p, const float* dy, const float* w,
                                 float* dx);
}  // namespace avx512

}  // namespace bm
