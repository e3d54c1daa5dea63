// AVX2 + FMA build of the fused attention kernels (body: attention_impl.h).
#define BM_ISA_NS avx2
#include "cpu/attention_impl.h"
