// Per-thread, grow-only, 64-byte-aligned scratch buffers for packing panels.
//
// Kernels run on OpenMP worker threads (persistent) and may be entered from several Python
// threads at once; thread_local storage makes each OS thread own its buffers, so no locking is
// needed and nothing is allocated in the steady state.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace bm {

struct AlignedBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~AlignedBuffer() { std::free(ptr); }
  void* get(size_t need) {
    if (need > bytes) {
      std::free(ptr);
      size_t rounded = (need + 4095) & ~size_t(4095);
      ptr = std::aligned_alloc(64, rounded);
      if (!ptr) { bytes = 0; throw std::bad_alloc(); }
      bytes = rounded;
    }
    return ptr;
  }
};

// slot: a small integer so one thread can hold several buffers at once (A panel, B block...).
template <typename T>
T* thread_scratch(size_t count, int slot) {
  static thread_local AlignedBuffer buffers[8];
  return static_cast<T*>(buffers[slot].get(count * sizeof(T) + 64));
}

}  // namespace bm
