// AVX-512 build of the row-wise kernels (body: nn_impl.h).
// GCC 12 flags _mm512_undefined_ps() inside its own intrinsic headers (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define BM_ISA_NS avx512
#include "cpu/nn_impl.h"
