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
  static inline v bcast(T s) { v r; for (int i = 0; i < L; ++i) r[i] = s; return r; }
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

template <typename T, typename I>
bool spmm_fwd(int64_t M, int64_t N, int64_t K, const I* indptr, const I* indices, const T* data,
              const T* X, int64_t ldx, T* Y, int64_t ldy, int nt) {
  const int parts = nt > 1 ? nt * 8 : 1;  // dynamic chunks: the machine is shared
  const std::vector<int64_t> b = spmm_split(M, indptr, parts);
  bool ok = true;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(&& : ok)
  for (int part = 0; part < parts; ++part)
    for (int64_t i = b[part]; i < b[part + 1]; ++i)
      ok = spmm_columns<T, RowFwd>(K, indptr[i], indptr[i + 1], indices, data, X, ldx, N,
                                   Y + i * ldy) && ok;
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
      ok = spmm_columns<T, RowTrans>(K, indptr[i], indptr[i + 1], indices, data, X + i * ldx,
                                     ld, N, Yt) && ok;
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
