// Emulation of the CUDA primitives the attention and row-wise (nn) kernels use beyond
// emu_core.h: warp shuffles and the fast-math intrinsics. Each group sits behind a guard
// (EMU_HAVE_SHFL, EMU_HAVE_FASTMATH) because other kernel families add the same groups in their
// own emu_*.h; whichever header run.sh includes first provides them.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu_core.h"

#ifndef EMU_HAVE_SHFL
#define EMU_HAVE_SHFL
// A shuffle is a store of every lane's value into its slot, a warp barrier, a read of the
// source lane's slot and a second barrier (the slot may be rewritten by the next shuffle). Only
// full-warp masks: every lane of the warp must call it, as on sm_70+ with a 0xffffffff mask;
// a divergent call deadlocks here, which is the point.
namespace emu {
inline uint64_t shfl_slots[1024];
template <class T>
inline T shfl_from(T v, unsigned src) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 8 bytes");
  const unsigned t = threadIdx.x, base = t - t % 32;
  std::memcpy(&shfl_slots[t], &v, sizeof(T));
  __syncwarp();
  T r;
  std::memcpy(&r, &shfl_slots[base + src], sizeof(T));
  __syncwarp();
  return r;
}
}  // namespace emu
template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
  const unsigned lane = threadIdx.x % 32;
  return emu::shfl_from(v, (lane & ~unsigned(width - 1)) + unsigned(src) % unsigned(width));
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned src = lane ^ unsigned(mask);
  // Outside the lane's segment of `width` lanes: the lane keeps its own value.
  const bool same = (src & ~unsigned(width - 1)) == (lane & ~unsigned(width - 1));
  return emu::shfl_from(v, same ? src : lane);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  const unsigned lane = threadIdx.x % 32, seg = lane % unsigned(width);
  return emu::shfl_from(v, seg + delta < unsigned(width) ? lane + delta : lane);
}
#endif

#ifndef EMU_HAVE_FASTMATH
#define EMU_HAVE_FASTMATH
// Exact host versions: the emulation checks index logic, not the intrinsics' ulp errors.
// exp2f / expf / logf come from <cmath>.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
#endif
