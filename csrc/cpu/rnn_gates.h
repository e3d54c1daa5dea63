// Fused per-step gate kernels of the RNN family (forward and backward), written once as plain
// loops and compiled three times: inside namespace bm::avx512 (rnn_avx512.cpp), bm::avx2
// (rnn_avx2.cpp) and bm::portable (rnn.cpp), each translation unit with its own ISA flags, so the
// `omp simd` loops below become 16/8/4-wide float code. sigmoid and tanh use fexp (a Cody-Waite
// range reduction + Taylor polynomial, 2^n built in the exponent bits): no libm call, so the
// loops vectorise; relative error ~1e-7 (float, degree 7) and ~1e-15 (double, degree 13).
//
// One call handles every batch row b for the hidden units j in [j0, j1) of one time step t
// (each OpenMP thread owns a slice of the hidden dimension). Rows with t >= lengths[b] are past
// the end of their sequence: the state is carried unchanged, the output row is zero, and in
// backward their gate gradients are zero and dh/dc pass through.
//
// Gate layouts (PyTorch's): LSTM columns [i | f | g | o], GRU [r | z | n], each block H wide.
// Saved per row (sv): RNN h_t (H); LSTM activated i, f, g, o (4H); GRU r, z, n and
// W_hn h + b_hn (4H).
// Also here: rec_pack / rec_run, the small-M product of the recurrence, C (M, N) (+)= A (M, K) B
// (K, N) with B packed once per call into K x NR panels (W_hh^T in forward, W_hh in backward),
// so nothing is repacked per step. Register tile MR rows x NV vectors (GCC vector extensions,
// the vector width of the including translation unit); A entries are broadcast, B rows loaded.
// The bf16 variant (vdpbf16ps) lives in rnn_avx512.cpp.
// No include guard on purpose: it is included once per ISA namespace, after <cstdint>,
// <cstring>, common/scratch.h and cpu/rnn.h, with BM_RNN_VBYTES / _MR / _NV defined.

namespace rnn_gates {

template <typename T>
struct ExpC;
template <>
struct ExpC<float> {
  using U = uint32_t;
  static constexpr float lo = -87.0f, hi = 88.0f, magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  static constexpr int32_t bias = 127, shift = 23;
};
template <>
struct ExpC<double> {
  using U = uint64_t;
  static constexpr double lo = -708.0, hi = 709.0, magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  static constexpr int64_t bias = 1023, shift = 52;
};

template <typename T>
static inline T poly(T r);
template <>
inline float poly<float>(float r) {
  return 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
         r * (1.0f / 720 + r * (1.0f / 5040)))))));
}
template <>
inline double poly<double>(double r) {
  double p = 1.0 / 6227020800.0;  // 1/13!
  const double c[] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880,
                      1.0 / 40320,     1.0 / 5040,     1.0 / 720,     1.0 / 120,
                      1.0 / 24,        1.0 / 6,        0.5,           1.0,  1.0};
  for (double k : c) p = p * r + k;
  return p;
}

// exp(x): n = round(x / ln 2) by the magic-number trick (its integer sits in the low mantissa
// bits, so no float->int conversion is needed), r = x - n ln 2 in two parts, 2^n in the exponent.
template <typename T>
static inline T fexp(T x) {
  using C = ExpC<T>;
  x = x < C::lo ? C::lo : x;
  x = x > C::hi ? C::hi : x;
  const T y = x * T(1.4426950408889634) + C::magic;
  const T n = y - C::magic;
  const T r = (x - n * C::ln2_hi) - n * C::ln2_lo;
  // Unsigned arithmetic: for a NaN x the bits are garbage (the NaN still propagates through
  // r), and a signed shift of them would be undefined behaviour.
  using U = typename C::U;
  const U e = (__builtin_bit_cast(U, y) - __builtin_bit_cast(U, C::magic) + U(C::bias)) << C::shift;
  return poly(r) * __builtin_bit_cast(T, e);
}
template <typename T>
static inline T sigm(T x) { return T(1) / (T(1) + fexp(-x)); }
template <typename T>
static inline T tanh_(T x) { return T(2) / (T(1) + fexp(T(-2) * x)) - T(1); }

template <typename T>
inline bool active(const int64_t* lengths, int64_t b, int64_t t) {
  return lengths == nullptr || t < lengths[b];
}

template <typename T>
void step_fwd(const bm::rnn::StepFwd<T>& a) {
  const int64_t H = a.H, j0 = a.j0, n = a.j1 - a.j0, GH = bm::rnn::gates(a.mode) * H;
  for (int64_t b = 0; b < a.B; ++b) {
    const T* __restrict hp = a.hp + b * a.hp_rs + j0;
    T* __restrict hn = a.hn + b * a.hn_rs + j0;
    T* __restrict y = a.y + b * a.y_rs + j0;
    if (!active<T>(a.lengths, b, a.t)) {
      for (int64_t j = 0; j < n; ++j) { hn[j] = hp[j]; y[j] = T(0); }
      if (a.mode == bm::rnn::kLstm) {
        const T* cp = a.cp + b * a.cp_rs + j0;
        T* cn = a.cn + b * a.cn_rs + j0;
        for (int64_t j = 0; j < n; ++j) cn[j] = cp[j];
      }
      continue;
    }
    const T* xg = a.xg + b * a.xg_rs + j0;  // may alias sv (read before written, same j)
    const T* __restrict hg = a.hg + b * GH + j0;
    const T* __restrict bs = a.bias + j0;
    T* sv = a.sv ? a.sv + b * a.sv_rs + j0 : nullptr;
    switch (a.mode) {
      case bm::rnn::kTanh:
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const T h = tanh_(xg[j] + hg[j] + bs[j]);
          hn[j] = h;
          y[j] = h;
        }
        if (sv) std::memcpy(sv, hn, n * sizeof(T));
        break;
      case bm::rnn::kRelu:
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const T p = xg[j] + hg[j] + bs[j];
          const T h = p > T(0) ? p : T(0);
          hn[j] = h;
          y[j] = h;
        }
        if (sv) std::memcpy(sv, hn, n * sizeof(T));
        break;
      case bm::rnn::kLstm: {
        const T* __restrict cp = a.cp + b * a.cp_rs + j0;
        T* __restrict cn = a.cn + b * a.cn_rs + j0;
        if (sv) {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) {
            const T i = sigm(xg[j] + hg[j] + bs[j]);
            const T f = sigm(xg[j + H] + hg[j + H] + bs[j + H]);
            const T g = tanh_(xg[j + 2 * H] + hg[j + 2 * H] + bs[j + 2 * H]);
            const T o = sigm(xg[j + 3 * H] + hg[j + 3 * H] + bs[j + 3 * H]);
            const T c = f * cp[j] + i * g;
            const T h = o * tanh_(c);
            sv[j] = i; sv[j + H] = f; sv[j + 2 * H] = g; sv[j + 3 * H] = o;
            cn[j] = c; hn[j] = h; y[j] = h;
          }
        } else {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) {
            const T i = sigm(xg[j] + hg[j] + bs[j]);
            const T f = sigm(xg[j + H] + hg[j + H] + bs[j + H]);
            const T g = tanh_(xg[j + 2 * H] + hg[j + 2 * H] + bs[j + 2 * H]);
            const T o = sigm(xg[j + 3 * H] + hg[j + 3 * H] + bs[j + 3 * H]);
            const T c = f * cp[j] + i * g;
            const T h = o * tanh_(c);
            cn[j] = c; hn[j] = h; y[j] = h;
          }
        }
        break;
      }
      case bm::rnn::kGru: {
        const T* __restrict bhn = a.bhn + j0;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const T r = sigm(xg[j] + hg[j] + bs[j]);
          const T z = sigm(xg[j + H] + hg[j + H] + bs[j + H]);
          const T ghn = hg[j + 2 * H] + bhn[j];
          const T nn = tanh_(xg[j + 2 * H] + bs[j + 2 * H] + r * ghn);
          const T h = (T(1) - z) * nn + z * hp[j];
          hn[j] = h; y[j] = h;
          if (sv) { sv[j] = r; sv[j + H] = z; sv[j + 2 * H] = nn; sv[j + 3 * H] = ghn; }
        }
        break;
      }
    }
  }
}

template <typename T>
void step_bwd(const bm::rnn::StepBwd<T>& a) {
  const int64_t H = a.H, j0 = a.j0, n = a.j1 - a.j0;
  const int G = bm::rnn::gates(a.mode);
  for (int64_t b = 0; b < a.B; ++b) {
    const T* __restrict dhin = a.dh + b * H + j0;
    T* __restrict dhp = a.dhp + b * H + j0;
    T* __restrict dg = a.dg + b * a.dg_rs + j0;
    if (!active<T>(a.lengths, b, a.t)) {
      for (int64_t j = 0; j < n; ++j) dhp[j] = dhin[j];
      for (int g = 0; g < G; ++g)
        for (int64_t j = 0; j < n; ++j) dg[j + g * H] = T(0);
      if (a.mode == bm::rnn::kGru) {
        T* dgh = a.dgh + b * a.dgh_rs + j0;
        for (int g = 0; g < G; ++g)
          for (int64_t j = 0; j < n; ++j) dgh[j + g * H] = T(0);
      }
      continue;  // dc passes through unchanged
    }
    const T* __restrict dy = a.dy + b * a.dy_rs + j0;
    const T* __restrict sv = a.sv + b * a.sv_rs + j0;
    switch (a.mode) {
      case bm::rnn::kTanh:
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const T h = sv[j];
          dg[j] = (dhin[j] + dy[j]) * (T(1) - h * h);
          dhp[j] = T(0);
        }
        break;
      case bm::rnn::kRelu:
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          dg[j] = sv[j] > T(0) ? dhin[j] + dy[j] : T(0);
          dhp[j] = T(0);
        }
        break;
      case bm::rnn::kLstm: {
        const T* __restrict cp = a.cp + b * a.cp_rs + j0;
        const T* __restrict cc = a.cc + b * a.cc_rs + j0;
        T* __restrict dc = a.dc + b * H + j0;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const T i = sv[j], f = sv[j + H], g = sv[j + 2 * H], o = sv[j + 3 * H];
          const T dh = dhin[j] + dy[j];
          const T tc = tanh_(cc[j]);
          const T dct = dc[j] + dh * o * (T(1) - tc * tc);
          dg[j] = dct * g * i * (T(1) - i);
          dg[j + H] = dct * cp[j] * f * (T(1) - f);
          dg[j + 2 * H] = dct * i * (T(1) - g * g);
          dg[j + 3 * H] = dh * tc * o * (T(1) - o);
          dc[j] = dct * f;
          dhp[j] = T(0);
        }
        break;
      }
      case bm::rnn::kGru: {
        const T* __restrict hp = a.hp + b * a.hp_rs + j0;
        T* __restrict dgh = a.dgh + b * a.dgh_rs + j0;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const T r = sv[j], z = sv[j + H], nn = sv[j + 2 * H], ghn = sv[j + 3 * H];
          const T dh = dhin[j] + dy[j];
          const T dnp = dh * (T(1) - z) * (T(1) - nn * nn);
          const T dzp = dh * (hp[j] - nn) * z * (T(1) - z);
          const T drp = dnp * ghn * r * (T(1) - r);
          dg[j] = drp; dg[j + H] = dzp; dg[j + 2 * H] = dnp;
          dgh[j] = drp; dgh[j + H] = dzp; dgh[j + 2 * H] = dnp * r;
          dhp[j] = dh * z;
        }
        break;
      }
    }
  }
}

// ---- recurrent product ------------------------------------------------------------------------

typedef float VecF __attribute__((vector_size(BM_RNN_VBYTES)));
typedef double VecD __attribute__((vector_size(BM_RNN_VBYTES)));
template <typename T>
struct VecOf { using type = VecF; };
template <>
struct VecOf<double> { using type = VecD; };
template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T, int MR>
static inline void rec_tile(int64_t K, const T* __restrict A, int64_t lda, const T* __restrict Bm,
                            int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate) {
  using V = Vec<T>;
  constexpr int W = sizeof(V) / sizeof(T), NV = BM_RNN_NV;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], Bm + k * ldb + v * W, sizeof(V));
    for (int i = 0; i < MR; ++i) {
      const T a = A[i * lda + k];
      for (int v = 0; v < NV; ++v) acc[i][v] += a * bv[v];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      V c = acc[i][v];
      if (accumulate) {
        V old;
        std::memcpy(&old, C + i * ldc + v * W, sizeof(V));
        c += old;
      }
      std::memcpy(C + i * ldc + v * W, &c, sizeof(V));
    }
}

template <typename T, int MR>
static void rec_rows(int mb, int64_t K, const T* A, int64_t lda, const T* Bm, int64_t ldb, T* C,
                     int64_t ldc, bool accumulate) {
  if constexpr (MR > 0) {
    if (mb == MR) return rec_tile<T, MR>(K, A, lda, Bm, ldb, C, ldc, accumulate);
    return rec_rows<T, MR - 1>(mb, K, A, lda, Bm, ldb, C, ldc, accumulate);
  }
}

template <typename T>
constexpr int rec_nr() { return BM_RNN_NV * int(sizeof(Vec<T>) / sizeof(T)); }

// Panel p of an N-column operand covers columns [c0, c0 + NR), c0 = min(p NR, N - NR): the last
// panel is shifted left to end at N (overlapping its neighbour) so no column is padded, unless
// N < NR (one zero-padded panel).
inline int64_t panel_start(int64_t p, int64_t N, int64_t NR) {
  return N >= NR ? std::min(p * NR, N - NR) : 0;
}

// Packs columns [0, N) of B (element (k, n) at B[k rs + n cs]) panel-major: panel p is K x NR
// contiguous, so each step streams the weights sequentially (the prefetchers follow it; rows
// of an unpacked W_hh are pages apart).
template <typename T>
void rec_pack(int64_t K, int64_t N, const T* B, int64_t rs, int64_t cs, T* out) {
  constexpr int NR = rec_nr<T>();
  const int64_t P = (N + NR - 1) / NR, nb = std::min<int64_t>(N, NR);
  for (int64_t p = 0; p < P; ++p) {
    const int64_t c0 = panel_start(p, N, NR);
    T* o = out + p * K * NR;
    if (cs == 1) {
      for (int64_t k = 0; k < K; ++k) {
        std::memcpy(o + k * NR, B + k * rs + c0, nb * sizeof(T));
        for (int64_t c = nb; c < NR; ++c) o[k * NR + c] = T(0);
      }
    } else {
      for (int64_t c = 0; c < NR; ++c) {
        const T* src = B + (c0 + c) * cs;
        if (c < nb)
          for (int64_t k = 0; k < K; ++k) o[k * NR + c] = src[k * rs];
        else
          for (int64_t k = 0; k < K; ++k) o[k * NR + c] = T(0);
      }
    }
  }
}

// C (M, N) (+)= A (M, K) B, B packed by rec_pack.
template <typename T>
void rec_run(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bp, T* C,
             int64_t ldc, bool accumulate) {
  constexpr int MR = BM_RNN_MR, NR = rec_nr<T>();
  // Row tiles of (nearly) equal height: M = 20 -> 4 x 5 rather than 6 + 6 + 6 + 2.
  const int64_t ntiles = (M + MR - 1) / MR, P = (N + NR - 1) / NR;
  T* tile = bm::thread_scratch<T>(size_t(MR) * NR, 1);  // GEMM's slot, unused in the time loop
  for (int64_t p = 0; p < P; ++p) {
    const int64_t c0 = panel_start(p, N, NR), first = p * NR;  // new columns: [first, N)
    const bool full = c0 == first && first + NR <= N;
    const T* bp = Bp + p * K * NR;
    for (int64_t i = 0; i < ntiles; ++i) {
      const int64_t m0 = M * i / ntiles;
      const int mb = int(M * (i + 1) / ntiles - m0);
      if (full) {
        rec_rows<T, MR>(mb, K, A + m0 * lda, lda, bp, NR, C + m0 * ldc + c0, ldc, accumulate);
        continue;
      }
      rec_rows<T, MR>(mb, K, A + m0 * lda, lda, bp, NR, tile, NR, false);
      const int64_t nb = N - first;
      for (int r = 0; r < mb; ++r) {
        T* c = C + (m0 + r) * ldc + first;
        const T* t = tile + r * NR + (first - c0);
        for (int64_t j = 0; j < nb; ++j) c[j] = accumulate ? c[j] + t[j] : t[j];
      }
    }
  }
}

}  // namespace rnn_gates

int64_t rnn_rec_packed_size(int64_t K, int64_t N, bool dbl) {
  const int64_t NR = dbl ? rnn_gates::rec_nr<double>() : rnn_gates::rec_nr<float>();
  return (N + NR - 1) / NR * NR * K;
}
void rnn_rec_pack(int64_t K, int64_t N, const float* B, int64_t rs, int64_t cs, float* out) {
  rnn_gates::rec_pack<float>(K, N, B, rs, cs, out);
}
void rnn_rec_pack(int64_t K, int64_t N, const double* B, int64_t rs, int64_t cs, double* out) {
  rnn_gates::rec_pack<double>(K, N, B, rs, cs, out);
}
void rnn_rec_run(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp,
                 float* C, int64_t ldc, bool acc) {
  rnn_gates::rec_run<float>(M, N, K, A, lda, Bp, C, ldc, acc);
}
void rnn_rec_run(int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* Bp,
                 double* C, int64_t ldc, bool acc) {
  rnn_gates::rec_run<double>(M, N, K, A, lda, Bp, C, ldc, acc);
}

void rnn_step_fwd(const bm::rnn::StepFwd<float>& a) { rnn_gates::step_fwd<float>(a); }
void rnn_step_fwd(const bm::rnn::StepFwd<double>& a) { rnn_gates::step_fwd<double>(a); }
void rnn_step_bwd(const bm::rnn::StepBwd<float>& a) { rnn_gates::step_bwd<float>(a); }
void rnn_step_bwd(const bm::rnn::StepBwd<double>& a) { rnn_gates::step_bwd<double>(a); }
