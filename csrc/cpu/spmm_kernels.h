// The CSR SpMM kernels, written once on GCC/Clang vector extensions and compiled per ISA:
// svd.cpp (16-byte vectors, baseline), svd_avx2.cpp (32), svd_avx512.cpp (64). Include inside
// the ISA's namespace after defining BM_SPMM_VB (vector bytes). See svd.h for the contract.
//
// Register blocking: a row of A is applied to a column block of up to 4 vectors (64 fp32 columns
// on AVX-512), so the accumulators (forward) or the broadcast X row (transpose) stay in
// registers while the row's entries stream by; X (forward) / the accumulator (transpose) is
// gathered by row index and is L2/L3-resident for the block widths SVD uses (k + p <= ~100).
// The includer brings <omp.h>, <algorithm>, <cstring>, <type_traits>, <vector> in first
// (this file is included inside a namespace).

template <typename T, int VB>
struct SpmmVec {
  typedef T v __attribute__((vector_size(VB)));
  static constexpr int L = VB / sizeof(T);
  static inline v load(const T* p) { v r; std::memcpy(&r, p, sizeof(v)); return r; }
  static inline void store(T* p, v x) { std::memcpy(p, &x, sizeof(v)); }
  // vector + scalar broadcasts the scalar. (A lane-by-lane loop here compiled with GCC 12 into
  // one masked broadcast per lane, a dependent chain of 16 per nonzero: 6x slower SpMM.)
  static inline v bcast(T s) { return v{} + s; }
};

// Row ranges of about equal nnz: parts + 1 boundaries.
template <typename I>
static std::vector<int64_t> spmm_split(int64_t M, const I* indptr, int parts) {
  std::vector<int64_t> b(parts + 1, M);
  b[0] = 0;
  const int64_t nnz = static_cast<int64_t>(indptr[M]);
  for (int t = 1; t < parts; ++t) {
    const int64_t target = nnz * t / parts;
    b[t] = std::lower_bound(indptr, indptr + M + 1, static_cast<I>(target)) - indptr;
    b[t] = std::clamp(b[t], b[t - 1], M);
  }
  return b;
}

// Forward, one row of A, NV vectors of VB bytes: y[0 : w] = sum_p data[p] * X[indices[p], 0 : w].
template <typename T, typename I, int VB, int NV>
struct RowFwd {
  static inline bool run(int64_t p0, int64_t p1, const I* indices, const T* data, const T* X,
                         int64_t ldx, int64_t N, T* y) {
    using V = SpmmVec<T, VB>;
    typename V::v acc[NV];
    for (int u = 0; u < NV; ++u) acc[u] = V::bcast(T(0));
    bool ok = true;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j = static_cast<int64_t>(indices[p]);
      if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(N)) { ok = false; continue; }
      const typename V::v v = V::bcast(data[p]);
      const T* x = X + j * ldx;
      for (int u = 0; u < NV; ++u) acc[u] += v * V::load(x + u * V::L);
    }
    for (int u = 0; u < NV; ++u) V::store(y + u * V::L, acc[u]);
    return ok;
  }
};

// Transpose, one row of A: Y[indices[p], 0 : w] += data[p] * x[0 : w].
template <typename T, typename I, int VB, int NV>
struct RowTrans {
  static inline bool run(int64_t p0, int64_t p1, const I* indices, const T* data, const T* x,
                         int64_t ldy, int64_t N, T* Y) {
    using V = SpmmVec<T, VB>;
    typename V::v xr[NV];
    for (int u = 0; u < NV; ++u) xr[u] = V::load(x + u * V::L);
    bool ok = true;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j = static_cast<int64_t>(indices[p]);
      if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(N)) { ok = false; continue; }
      const typename V::v v = V::bcast(data[p]);
      T* y = Y + j * ldy;
      for (int u = 0; u < NV; ++u) V::store(y + u * V::L, V::load(y + u * V::L) + v * xr[u]);
    }
    return ok;
  }
};

// Walks the K columns of one row in register blocks: 4 full vectors at a time, then 1-3 full
// vectors, then a half and a quarter vector, then single elements, so no access goes past
// column K (x and y may be views into larger arrays) and no tail of >= 2 elements is scalar.
template <typename T, template <typename, typename, int, int> class Row, typename I,
          typename... Args>
static inline bool spmm_columns(int64_t K, int64_t p0, int64_t p1, const I* indices,
                                const T* data, const T* src, int64_t ld, int64_t N, T* dst) {
  constexpr int VB = BM_SPMM_VB, L = VB / sizeof(T);
  bool ok = true;
  int64_t c = 0;
  for (; c + 4 * L <= K; c += 4 * L) ok &= Row<T, I, VB, 4>::run(p0, p1, indices, data, src + c, ld, N, dst + c);
  switch ((K - c) / L) {
    case 3: ok &= Row<T, I, VB, 3>::run(p0, p1, indices, data, src + c, ld, N, dst + c); c += 3 * L; break;
    case 2: ok &= Row<T, I, VB, 2>::run(p0, p1, indices, data, src + c, ld, N, dst + c); c += 2 * L; break;
    case 1: ok &= Row<T, I, VB, 1>::run(p0, p1, indices, data, src + c, ld, N, dst + c); c += L; break;
    default: break;
  }
  if constexpr (L >= 4) {
    if (K - c >= L / 2) { ok &= Row<T, I, VB / 2, 1>::run(p0, p1, indices, data, src + c, ld, N, dst + c); c += L / 2; }
  }
  if constexpr (L >= 8) {
    if (K - c >= L / 4) { ok &= Row<T, I, VB / 4, 1>::run(p0, p1, indices, data, src + c, ld, N, dst + c); c += L / 4; }
  }
  for (; c < K; ++c) ok &= Row<T, I, sizeof(T), 1>::run(p0, p1, indices, data, src + c, ld, N, dst + c);
  return ok;
}

#if BM_SPMM_VB == 64
// AVX-512: the columns of a row go in passes of up to 4 vectors, the last of which may be masked,
// so K columns cost ceil(K / 4L) passes over the row's nonzeros. The generic walk above needs up
// to 5 passes for a ragged K (e.g. K = 30 doubles: 3 vectors, a half, 2 scalars), and each pass
// gathers the same rows of X again: ML-100k (100K nnz), K = 30 fp64, one thread, 0.53 ms -> 0.2.

// One 512-bit vector of T (float or double) and the operations the kernels use.
template <typename T> struct ZmmTypes;
template <> struct ZmmTypes<float> { using v = __m512; using mask = __mmask16; };
template <> struct ZmmTypes<double> { using v = __m512d; using mask = __mmask8; };
template <typename T>
struct Zmm {
  static constexpr bool F = std::is_same<T, float>::value;
  using v = typename ZmmTypes<T>::v;
  using mask = typename ZmmTypes<T>::mask;
  static constexpr int L = 64 / sizeof(T);
#define BM_ZMM_OP(ps_expr, pd_expr) \
  if constexpr (F) return ps_expr; \
  else return pd_expr;
  static inline v zero() { BM_ZMM_OP(_mm512_setzero_ps(), _mm512_setzero_pd()) }
  static inline v set1(T s) { BM_ZMM_OP(_mm512_set1_ps(s), _mm512_set1_pd(s)) }
  static inline v load(const T* p) { BM_ZMM_OP(_mm512_loadu_ps(p), _mm512_loadu_pd(p)) }
  static inline v load(const T* p, mask k) {
    BM_ZMM_OP(_mm512_maskz_loadu_ps(k, p), _mm512_maskz_loadu_pd(k, p))
  }
  static inline void store(T* p, v x) { BM_ZMM_OP(_mm512_storeu_ps(p, x), _mm512_storeu_pd(p, x)) }
  static inline void store(T* p, v x, mask k) {
    BM_ZMM_OP(_mm512_mask_storeu_ps(p, k, x), _mm512_mask_storeu_pd(p, k, x))
  }
  static inline v fma(v a, v b, v c) {
    BM_ZMM_OP(_mm512_fmadd_ps(a, b, c), _mm512_fmadd_pd(a, b, c))
  }
#undef BM_ZMM_OP
};

// Forward, one row of A, a pass of NV vectors. X rows are read whole, also the last vector of a
// ragged pass (a masked load in this loop costs ~1.5x the whole row on Zen 4: K = 30 fp64 0.36
// vs 0.24 ms), so the lanes past the pass's columns hold whatever follows in memory; only the
// `store` lanes of the result are written. Rows j >= wide, whose whole vectors would run past the
// end of X, are read from `edge` (a zero-padded copy). Two accumulator sets, for even and odd
// nonzeros: one set would chain every nonzero on the previous one's FMA (4 cycles).
template <typename T, typename I, int NV>
static inline bool row_fwd_zmm(int64_t p0, int64_t p1, const I* indices, const T* data,
                               const T* X, int64_t ldx, int64_t N, int64_t wide, const T* edge,
                               T* y, typename Zmm<T>::mask store) {
  using Z = Zmm<T>;
  typename Z::v a0[NV], a1[NV];
  for (int u = 0; u < NV; ++u) a0[u] = a1[u] = Z::zero();
  auto row = [&](int64_t j) { return j < wide ? X + j * ldx : edge + (j - wide) * (NV * Z::L); };
  bool ok = true;
  int64_t p = p0;
  for (; p + 2 <= p1; p += 2) {
    const int64_t j0 = static_cast<int64_t>(indices[p]), j1 = static_cast<int64_t>(indices[p + 1]);
    if (static_cast<uint64_t>(j0) >= static_cast<uint64_t>(N) ||
        static_cast<uint64_t>(j1) >= static_cast<uint64_t>(N)) {
      ok = false;
      continue;
    }
    const T* x0 = row(j0);
    const T* x1 = row(j1);
    const typename Z::v v0 = Z::set1(data[p]), v1 = Z::set1(data[p + 1]);
    for (int u = 0; u < NV; ++u) {
      a0[u] = Z::fma(v0, Z::load(x0 + u * Z::L), a0[u]);
      a1[u] = Z::fma(v1, Z::load(x1 + u * Z::L), a1[u]);
    }
  }
  if (p < p1) {
    const int64_t j = static_cast<int64_t>(indices[p]);
    if (static_cast<uint64_t>(j) < static_cast<uint64_t>(N)) {
      const T* x = row(j);
      const typename Z::v v = Z::set1(data[p]);
      for (int u = 0; u < NV; ++u) a0[u] = Z::fma(v, Z::load(x + u * Z::L), a0[u]);
    } else {
      ok = false;
    }
  }
  for (int u = 0; u < NV - 1; ++u) Z::store(y + u * Z::L, a0[u] + a1[u]);
  Z::store(y + (NV - 1) * Z::L, a0[NV - 1] + a1[NV - 1], store);
  return ok;
}

// One pass of the forward product: columns [c, c + w) of Y's rows i0..i1, w <= 4 vectors.
template <typename T, typename I>
struct FwdPassZ {
  const T* X;
  int64_t ldx, N, wide;
  std::vector<T> edge;
  int nv;
  typename Zmm<T>::mask store;

  FwdPassZ(const T* X0, int64_t ldx_, int64_t N_, int64_t c, int64_t w)
      : X(X0 + c), ldx(ldx_), N(N_) {
    constexpr int L = Zmm<T>::L;
    nv = static_cast<int>((w + L - 1) / L);
    const int64_t r = w - (nv - 1) * L;  // lanes of the last vector
    store = static_cast<typename Zmm<T>::mask>(r == L ? ~0u : (1u << r) - 1u);
    // Row j's vectors end at element c + j ldx + nv L of X; X's last element is (N-1) ldx + K-1
    // >= (N-1) ldx + c + w - 1. Rows past `wide` are copied (at most L - 1 of them).
    const int64_t over = nv * L - w;
    wide = N == 0 ? 0 : std::clamp<int64_t>(N - (over + ldx - 1) / ldx, 0, N);
    edge.assign(static_cast<size_t>((N - wide) * nv * L), T(0));
    for (int64_t j = wide; j < N; ++j)
      std::memcpy(edge.data() + (j - wide) * nv * L, X + j * ldx, sizeof(T) * w);
  }

  bool run(int64_t p0, int64_t p1, const I* indices, const T* data, T* y) const {
    const T* e = edge.data();
    switch (nv) {
      case 1: return row_fwd_zmm<T, I, 1>(p0, p1, indices, data, X, ldx, N, wide, e, y, store);
      case 2: return row_fwd_zmm<T, I, 2>(p0, p1, indices, data, X, ldx, N, wide, e, y, store);
      case 3: return row_fwd_zmm<T, I, 3>(p0, p1, indices, data, X, ldx, N, wide, e, y, store);
      default: return row_fwd_zmm<T, I, 4>(p0, p1, indices, data, X, ldx, N, wide, e, y, store);
    }
  }
};

// Transpose, one row of A: the accumulator rows of Y are read and written with the last vector
// masked (Y may be a view: nothing past its columns may be written).
template <typename T, typename I, int NV, bool TAIL>
struct RowTransZ {
  static inline bool run(int64_t p0, int64_t p1, const I* indices, const T* data, const T* x,
                         int64_t ldy, int64_t N, T* Y, typename Zmm<T>::mask tail) {
    using Z = Zmm<T>;
    typename Z::v xr[NV];
    for (int u = 0; u < NV; ++u)
      xr[u] = TAIL && u == NV - 1 ? Z::load(x + u * Z::L, tail) : Z::load(x + u * Z::L);
    bool ok = true;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j = static_cast<int64_t>(indices[p]);
      if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(N)) { ok = false; continue; }
      const typename Z::v v = Z::set1(data[p]);
      T* y = Y + j * ldy;
      for (int u = 0; u < NV; ++u) {
        if (TAIL && u == NV - 1)
          Z::store(y + u * Z::L, Z::fma(v, xr[u], Z::load(y + u * Z::L, tail)), tail);
        else
          Z::store(y + u * Z::L, Z::fma(v, xr[u], Z::load(y + u * Z::L)));
      }
    }
    return ok;
  }
};

// All K columns of one row of A in ceil(K / 4L) passes.
template <typename T, typename I>
static inline bool spmm_trans_columns_zmm(int64_t K, int64_t p0, int64_t p1, const I* indices,
                                          const T* data, const T* x, int64_t ld, int64_t N,
                                          T* Y) {
  constexpr int L = Zmm<T>::L;
  bool ok = true;
  int64_t c = 0;
  for (; c + 4 * L <= K; c += 4 * L)
    ok &= RowTransZ<T, I, 4, false>::run(p0, p1, indices, data, x + c, ld, N, Y + c, 0);
  const int64_t rest = K - c;
  if (rest == 0) return ok;
  const auto tail = static_cast<typename Zmm<T>::mask>((1u << (rest % L)) - 1u);
  const T* xc = x + c;
  T* Yc = Y + c;
  switch (static_cast<int>((rest + L - 1) / L) * 2 + (rest % L != 0)) {
    case 2: return RowTransZ<T, I, 1, false>::run(p0, p1, indices, data, xc, ld, N, Yc, 0) && ok;
    case 3: return RowTransZ<T, I, 1, true>::run(p0, p1, indices, data, xc, ld, N, Yc, tail) && ok;
    case 4: return RowTransZ<T, I, 2, false>::run(p0, p1, indices, data, xc, ld, N, Yc, 0) && ok;
    case 5: return RowTransZ<T, I, 2, true>::run(p0, p1, indices, data, xc, ld, N, Yc, tail) && ok;
    case 6: return RowTransZ<T, I, 3, false>::run(p0, p1, indices, data, xc, ld, N, Yc, 0) && ok;
    case 7: return RowTransZ<T, I, 3, true>::run(p0, p1, indices, data, xc, ld, N, Yc, tail) && ok;
    default: return RowTransZ<T, I, 4, true>::run(p0, p1, indices, data, xc, ld, N, Yc, tail) && ok;
  }
}
#endif

template <typename T, typename I>
bool spmm_fwd(int64_t M, int64_t N, int64_t K, const I* indptr, const I* indices, const T* data,
              const T* X, int64_t ldx, T* Y, int64_t ldy, int nt) {
  const int parts = nt > 1 ? nt * 8 : 1;  // dynamic chunks: the machine is shared
  const std::vector<int64_t> b = spmm_split(M, indptr, parts);
  bool ok = true;
#if BM_SPMM_VB == 64
  std::vector<FwdPassZ<T, I>> passes;  // column passes of up to 4 vectors
  for (int64_t c = 0; c < K; c += 4 * Zmm<T>::L)
    passes.emplace_back(X, ldx, N, c, std::min<int64_t>(4 * Zmm<T>::L, K - c));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(&& : ok)
  for (int part = 0; part < parts; ++part)
    for (int64_t i = b[part]; i < b[part + 1]; ++i)
      for (size_t q = 0; q < passes.size(); ++q)
        ok = passes[q].run(indptr[i], indptr[i + 1], indices, data,
                           Y + i * ldy + static_cast<int64_t>(q) * 4 * Zmm<T>::L) && ok;
#else
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(&& : ok)
  for (int part = 0; part < parts; ++part)
    for (int64_t i = b[part]; i < b[part + 1]; ++i)
      ok = spmm_columns<T, RowFwd>(K, indptr[i], indptr[i + 1], indices, data, X, ldx, N,
                                   Y + i * ldy) && ok;
#endif
  return ok;
}

template <typename T, typename I>
bool spmm_trans(int64_t M, int64_t N, int64_t K, const I* indptr, const I* indices,
                const T* data, const T* X, int64_t ldx, T* Y, int64_t ldy, int nt) {
  const int64_t nnz = indptr[M];
  nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, nnz / 20000 + 1)));
  const std::vector<int64_t> b = spmm_split(M, indptr, nt);
  std::vector<T> work(static_cast<size_t>(nt > 1 ? (nt - 1) * N * K : 0));
  bool ok = true;
#pragma omp parallel num_threads(nt) reduction(&& : ok)
  {
    const int t = omp_get_thread_num();
    T* Yt = t == 0 ? Y : work.data() + (t - 1) * N * K;
    const int64_t ld = t == 0 ? ldy : K;
    for (int64_t j = 0; j < N; ++j) std::fill(Yt + j * ld, Yt + j * ld + K, T(0));
    for (int64_t i = b[t]; i < b[t + 1]; ++i)
#if BM_SPMM_VB == 64
      ok = spmm_trans_columns_zmm<T>(K, indptr[i], indptr[i + 1], indices, data, X + i * ldx, ld,
                                     N, Yt) && ok;
#else
      ok = spmm_columns<T, RowTrans>(K, indptr[i], indptr[i + 1], indices, data, X + i * ldx,
                                     ld, N, Yt) && ok;
#endif
#pragma omp barrier
    // Sum the private accumulators into Y, rows split between the threads.
    const int64_t j0 = N * t / nt, j1 = N * (t + 1) / nt;
    for (int s = 1; s < nt; ++s) {
      const T* W = work.data() + (s - 1) * N * K;
      for (int64_t j = j0; j < j1; ++j)
#pragma omp simd
        for (int64_t c = 0; c < K; ++c) Y[j * ldy + c] += W[j * K + c];
    }
  }
  return ok;
}

#define BM_SPMM_INSTANTIATE(T, I)                                                              \
  template bool spmm_fwd<T, I>(int64_t, int64_t, int64_t, const I*, const I*, const T*,        \
                               const T*, int64_t, T*, int64_t, int);                           \
  template bool spmm_trans<T, I>(int64_t, int64_t, int64_t, const I*, const I*, const T*,      \
                                 const T*, int64_t, T*, int64_t, int);
BM_SPMM_INSTANTIATE(float, int32_t)
BM_SPMM_INSTANTIATE(float, int64_t)
BM_SPMM_INSTANTIATE(double, int32_t)
BM_SPMM_INSTANTIATE(double, int64_t)
#undef BM_SPMM_INSTANTIATE
