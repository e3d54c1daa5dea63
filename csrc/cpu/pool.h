// 2-D pooling on the CPU: max (with argmax indices) and average, forward and backward, and global
// average pooling.
//
// Layouts: x (N, C, H, W), y / indices (N, C, P, Q), all C-contiguous; indices are int64 flat
// offsets ih*W + iw into the (H, W) plane, as torch returns them. Semantics are torch's
// (python/bigmodel/reference/pool.py is the spec): padded pixels never win a max, the first
// maximum in scan order wins and NaN propagates (torch keeps the last NaN's index); average
// windows are clipped to the padded input and divided by the clipped size (count_include_pad)
// or by the number of input pixels.
//
// Variants: a generic loop over windows (any kernel, stride, padding) and, for the common 2x2
// stride-2 unpadded case, an AVX-512 kernel (pool_avx512.cpp) that deinterleaves even/odd
// columns of two input rows with permutes: memory-bound, one pass over x.
// Threads: planes (n, c) are split across threads; backward passes own whole dx planes, so no
// atomics are needed.
#pragma once
#include <cstdint>

namespace bm {

struct Pool2dParams {
  int64_t N, C, H, W;          // input
  int64_t P, Q;                // output
  int64_t kh, kw, sh, sw, ph, pw;
};

// Throws std::invalid_argument unless the sizes are positive and every window overlaps the input.
void pool2d_validate(const Pool2dParams& p);

template <typename T>
void maxpool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* indices);
// dx = 0, then dx[plane][indices] += dy; throws if an index is outside [0, H*W).
template <typename T>
void maxpool2d_backward(const Pool2dParams& p, const T* dy, const int64_t* indices, T* dx);
template <typename T>
void avgpool2d_forward(const Pool2dParams& p, bool count_include_pad, const T* x, T* y);
template <typename T>
void avgpool2d_backward(const Pool2dParams& p, bool count_include_pad, const T* dy, T* dx);

// Global average pooling over planes: y[i] = mean(x[i*HW : (i+1)*HW]), dx[i*HW + j] = dy[i]/HW.
template <typename T>
void global_avgpool2d_forward(int64_t planes, int64_t HW, const T* x, T* y);
template <typename T>
void global_avgpool2d_backward(int64_t planes, int64_t HW, const T* dy, T* dx);

namespace avx512 {
// 2x2 stride-2 unpadded max / avg of float planes; false when the shape is not that case.
bool maxpool2d_2x2_forward(const Pool2dParams& p, const float* x, float* y, int64_t* indices);
bool avgpool2d_2x2_forward(const Pool2dParams& p, const float* x, float* y);
bool avgpool2d_2x2_backward(const Pool2dParams& p, const float* dy, float* dx);
// Max backward for P = H/2, Q = W/2: writes dx once per 2x2 block when every index of a plane
// lies in its 2x2 block; plane_ok[plane] = false where not (that plane is left for the caller).
bool maxpool2d_2x2_backward(const Pool2dParams& p, const float* dy, const int64_t* indices,
                            float* dx, bool* plane_ok);
}  // namespace avx512

}  // namespace bm
