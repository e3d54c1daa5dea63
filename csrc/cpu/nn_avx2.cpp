// AVX2 + FMA build of the row-wise kernels (body: nn_impl.h).
#define BM_ISA_NS avx2
#include "cpu/nn_impl.h"
