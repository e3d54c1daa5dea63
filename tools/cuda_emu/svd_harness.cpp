// Runs the CSR kernels of csrc/cuda/svd.cu (emulated on the host, see emu_core.h) under ASan on
// random matrices: empty rows and columns, one very long row (spread over many warps: carries
// and the fix-up), unsorted and repeated column indices, int32 and int64 indices, fp32 and fp64,
// K across the 32/64/128 column-tile edges, padded leading dimensions. Checks
//   launch_spmm_csr      against a double reference; the padding columns of Y stay untouched;
//                        a second run is bitwise identical;
//   launch_csr_transpose against a stable counting sort done on the host (exact);
//   validation           a bad indptr / column index throws std::invalid_argument.
// Every array is its own heap allocation of exact size, so any read or write outside the
// matrix is an ASan report. Usage: svd_harness [reps per case]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/svd.h"
#include "emu_core.h"

using namespace bm::cuda;

namespace {

int failures = 0;

void fail(const std::string& what) {
  ++failures;
  std::printf("FAIL %s\n", what.c_str());
}

struct Csr {
  int64_t rows, cols;
  std::vector<int64_t> indptr, indices;
  std::vector<double> data;
};

// kind 0: uniform; 1: one long row (~60% of the entries) + empty rows; 2: every row empty but
// a few; 3: all rows empty.
Csr random_csr(std::mt19937& g, int64_t rows, int64_t cols, int64_t nnz, int kind) {
  Csr a{rows, cols, {0}, {}, {}};
  std::uniform_int_distribution<int64_t> col(0, cols > 0 ? cols - 1 : 0);
  std::normal_distribution<double> val;
  std::vector<int64_t> len(rows, 0);
  if (kind != 3 && rows > 0 && cols > 0) {
    std::uniform_int_distribution<int64_t> row(0, rows - 1);
    const int64_t heavy = row(g);
    for (int64_t e = 0; e < nnz; ++e) {
      int64_t r = row(g);
      if (kind == 1 && e % 5 < 3) r = heavy;
      if (kind == 2) r = r % 7 == 0 ? r : heavy;
      if (kind == 1 && r % 4 == 1 && r != heavy) continue;  // empty rows
      ++len[r];
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t e = 0; e < len[r]; ++e) {
      a.indices.push_back(col(g));  // unsorted, repeats possible
      a.data.push_back(val(g));
    }
    a.indptr.push_back(static_cast<int64_t>(a.indices.size()));
  }
  return a;
}

template <class I>
std::vector<I> cast_idx(const std::vector<int64_t>& v) {
  return std::vector<I>(v.begin(), v.end());
}

template <class T, class I>
struct Device {  // exact-size copies: ASan sees any access outside
  std::vector<I> indptr, indices;
  std::vector<T> data;
  CsrMatrix m;
  explicit Device(const Csr& a, int64_t extra_stored = 0) {
    indptr = cast_idx<I>(a.indptr);
    indices = cast_idx<I>(a.indices);
    data.assign(a.data.begin(), a.data.end());
    for (int64_t e = 0; e < extra_stored; ++e) indices.push_back(0), data.push_back(T(0));
    m.rows = a.rows, m.cols = a.cols, m.stored = static_cast<int64_t>(indices.size());
    m.indptr = indptr.data();
    m.indices = indices.empty() ? nullptr : indices.data();
    m.data = data.empty() ? nullptr : data.data();
    m.index_type = sizeof(I) == 4 ? IndexType::i32 : IndexType::i64;
    m.dtype = sizeof(T) == 4 ? DType::f32 : DType::f64;
  }
};

template <class T, class I>
void check_spmm(std::mt19937& g, const Csr& a, int64_t K, const std::string& name) {
  Device<T, I> d(a, 3);  // 3 stored entries past indptr[rows]: must be ignored
  const int64_t ldx = K + 3, ldy = K + 5;
  std::normal_distribution<double> val;
  std::vector<T> X(std::max<int64_t>(a.cols * ldx, 1));
  for (auto& x : X) x = T(val(g));
  std::vector<T> Y(std::max<int64_t>(a.rows * ldy, 1), T(-777));
  std::vector<char> work(spmm_csr_workspace_bytes(a.rows, d.m.stored, K, d.m.dtype));
  launch_spmm_csr(d.m, X.data(), ldx, Y.data(), ldy, K, work.data(), work.size(), 0);
  const double tol = sizeof(T) == 4 ? 1e-4 : 1e-12;
  for (int64_t i = 0; i < a.rows; ++i) {
    for (int64_t c = 0; c < ldy; ++c) {
      const double y = Y[i * ldy + c];
      if (c >= K) {
        if (y != -777) return fail(name + ": padding column written");
        continue;
      }
      double ref = 0, mag = 0;
      for (int64_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p) {
        ref += a.data[p] * double(T(X[a.indices[p] * ldx + c]));
        mag += std::abs(a.data[p] * double(X[a.indices[p] * ldx + c]));
      }
      if (std::abs(y - ref) > tol * (1 + mag))
        return fail(name + ": row " + std::to_string(i) + " col " + std::to_string(c) + " got " +
                    std::to_string(y) + " want " + std::to_string(ref));
    }
  }
  std::vector<T> Y2(Y.size(), T(-777));
  launch_spmm_csr(d.m, X.data(), ldx, Y2.data(), ldy, K, work.data(), work.size(), 0);
  if (Y2 != Y) fail(name + ": second run differs");
}

template <class T, class I>
void check_transpose(const Csr& a, const std::string& name) {
  Device<T, I> d(a, 2);
  std::vector<I> ip(a.cols + 1, I(-5)), ix(d.m.stored, I(-5));
  std::vector<T> dx(d.m.stored, T(-5));
  std::vector<char> work(csr_transpose_workspace_bytes(a.rows, a.cols, d.m.stored, d.m.index_type));
  launch_csr_transpose(d.m, ip.data(), ix.empty() ? nullptr : ix.data(),
                       dx.empty() ? nullptr : dx.data(), work.data(), work.size(), 0);
  // Reference: stable counting sort by column.
  const int64_t nnz = a.indptr[a.rows];
  std::vector<int64_t> rp(a.cols + 1, 0), ri(nnz);
  std::vector<double> rd(nnz);
  for (int64_t p = 0; p < nnz; ++p) ++rp[a.indices[p] + 1];
  for (int64_t c = 0; c < a.cols; ++c) rp[c + 1] += rp[c];
  std::vector<int64_t> next(rp.begin(), rp.end() - 1);
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t p = a.indptr[r]; p < a.indptr[r + 1]; ++p) {
      const int64_t s = next[a.indices[p]]++;
      ri[s] = r, rd[s] = a.data[p];
    }
  for (int64_t c = 0; c <= a.cols; ++c)
    if (ip[c] != I(rp[c])) return fail(name + ": indptr_t[" + std::to_string(c) + "]");
  for (int64_t s = 0; s < nnz; ++s)
    if (ix[s] != I(ri[s]) || dx[s] != T(rd[s])) return fail(name + ": entry " + std::to_string(s));
  for (int64_t s = nnz; s < d.m.stored; ++s)
    if (ix[s] != I(-5) || dx[s] != T(-5)) return fail(name + ": wrote past nnz");
}

template <class I>
void check_rejects(const Csr& good) {
  struct Bad { const char* name; int64_t pos; int64_t value; bool indptr; };
  const int64_t nnz = good.indptr[good.rows];
  const Bad bads[] = {{"indptr[0]", 0, 1, true},
                      {"decreasing indptr", good.rows / 2, nnz + 1, true},
                      {"indptr[-1] too large", good.rows, nnz + 10, true},
                      {"negative column", nnz / 2, -1, false},
                      {"column >= cols", nnz - 1, good.cols, false}};
  for (const Bad& b : bads) {
    Csr a = good;
    (b.indptr ? a.indptr : a.indices)[b.pos] = b.value;
    Device<float, I> d(a);
    std::vector<float> X(a.cols * 4, 1.f), Y(a.rows * 4);
    std::vector<char> work(spmm_csr_workspace_bytes(a.rows, d.m.stored, 4, d.m.dtype));
    bool threw = false;
    try {
      launch_spmm_csr(d.m, X.data(), 4, Y.data(), 4, 4, work.data(), work.size(), 0);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    if (!threw) fail(std::string("spmm accepted ") + b.name);
    std::vector<char> tw(csr_transpose_workspace_bytes(a.rows, a.cols, d.m.stored, d.m.index_type));
    std::vector<I> ip(a.cols + 1), ix(d.m.stored);
    std::vector<float> dx(d.m.stored);
    threw = false;
    try {
      launch_csr_transpose(d.m, ip.data(), ix.data(), dx.data(), tw.data(), tw.size(), 0);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    if (!threw) fail(std::string("transpose accepted ") + b.name);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 2;
  std::mt19937 g(7);
  struct Shape { int64_t rows, cols, nnz; int kind; };
  const Shape shapes[] = {{1, 1, 1, 0},      {1, 50, 40, 0},   {50, 1, 30, 0},
                          {97, 61, 500, 0},  {200, 90, 1500, 1}, {300, 40, 900, 2},
                          {40, 30, 0, 3},    {0, 10, 0, 0},    {10, 0, 0, 0}};
  const int64_t Ks[] = {1, 7, 32, 33, 64, 65, 130};
  int cases = 0;
  for (int rep = 0; rep < reps; ++rep)
    for (const Shape& s : shapes) {
      const Csr a = random_csr(g, s.rows, s.cols, s.nnz, s.kind);
      const std::string tag = std::to_string(s.rows) + "x" + std::to_string(s.cols) + " nnz " +
                              std::to_string(a.indptr.back()) + " kind " + std::to_string(s.kind);
      for (int64_t K : Ks) {
        if (rep > 0 && K != 33 && K != 130) continue;  // later reps: the tile edges only
        check_spmm<float, int32_t>(g, a, K, tag + " f32/i32 K " + std::to_string(K));
        check_spmm<double, int64_t>(g, a, K, tag + " f64/i64 K " + std::to_string(K));
        cases += 2;
      }
      check_spmm<float, int64_t>(g, a, 5, tag + " f32/i64");
      check_spmm<double, int32_t>(g, a, 40, tag + " f64/i32");
      check_transpose<float, int32_t>(a, tag + " transpose f32/i32");
      check_transpose<double, int64_t>(a, tag + " transpose f64/i64");
      cases += 4;
    }
  const Csr good = random_csr(g, 60, 20, 300, 0);
  check_rejects<int32_t>(good);
  check_rejects<int64_t>(good);
  std::printf("svd_harness: %d cases + 20 rejections, %d failures\n", cases, failures);
  return failures != 0;
}
