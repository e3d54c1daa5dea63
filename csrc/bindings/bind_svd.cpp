// pybind11 glue for the truncated-SVD kernels: CSR x dense products (spmm_csr). Argument checks,
// GIL release, no math.
#include "bindings/common.h"
#include "cpu/svd.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

template <typename T, typename I>
void run(const py::array& indptr, const py::array& indices, const py::array& data,
         const py::array& x, py::array& out, int64_t M, int64_t N, bool transpose) {
  const I* ip = static_cast<const I*>(indptr.data());
  const I* ix = static_cast<const I*>(indices.data());
  const T* d = static_cast<const T*>(data.data());
  const T* px = static_cast<const T*>(x.data());
  T* po = static_cast<T*>(out.mutable_data());
  const int64_t K = out.shape(1);
  const int64_t ldx = x.strides(0) / static_cast<int64_t>(sizeof(T));
  const int64_t ldy = out.strides(0) / static_cast<int64_t>(sizeof(T));
  py::gil_scoped_release nogil;
  if (transpose) bm::spmm_csr_t<T, I>(M, N, K, ip, ix, d, px, ldx, po, ldy);
  else bm::spmm_csr<T, I>(M, N, K, ip, ix, d, px, ldx, po, ldy);
}

bool rows_contiguous(const py::array& a) {
  return a.strides(1) == static_cast<py::ssize_t>(a.itemsize()) &&
         a.strides(0) >= a.shape(1) * static_cast<py::ssize_t>(a.itemsize()) &&
         a.strides(0) % static_cast<py::ssize_t>(a.itemsize()) == 0;
}

// out = A @ x (transpose=False) or A.T @ x (transpose=True); A is CSR of shape (M, N).
void spmm(const py::array& indptr, const py::array& indices, const py::array& data,
          const py::array& x, py::array& out, int64_t M, int64_t N, bool transpose) {
  check_ndim(indptr, 1, "indptr");
  check_ndim(indices, 1, "indices");
  check_ndim(data, 1, "data");
  check_ndim(x, 2, "x");
  check_ndim(out, 2, "out");
  check_writeable(out, "out");
  BM_CHECK(M >= 0 && N >= 0, "spmm_csr: negative shape (", M, ", ", N, ")");
  BM_CHECK(indptr.shape(0) == M + 1, "spmm_csr: indptr has ", indptr.shape(0),
           " entries, expected rows + 1 = ", M + 1);
  BM_CHECK(indices.shape(0) == data.shape(0), "spmm_csr: indices (", indices.shape(0),
           ") and data (", data.shape(0), ") differ in length");
  for (const py::array* a : {&indptr, &indices, &data})
    BM_CHECK(a->ndim() == 1 && (a->shape(0) <= 1 || a->strides(0) == a->itemsize()),
             "spmm_csr: indptr, indices and data must be contiguous");
  BM_CHECK(rows_contiguous(x), "spmm_csr: x must have contiguous rows, got shape ", shape_str(x));
  BM_CHECK(rows_contiguous(out), "spmm_csr: out must have contiguous rows");
  const int64_t rows_x = transpose ? M : N, rows_y = transpose ? N : M;
  BM_CHECK(x.shape(0) == rows_x, "spmm_csr: x has ", x.shape(0), " rows, expected ", rows_x,
           " (A is ", M, "x", N, transpose ? ", transposed)" : ")");
  BM_CHECK(out.shape(0) == rows_y && out.shape(1) == x.shape(1), "spmm_csr: out has shape ",
           shape_str(out), ", expected (", rows_y, ", ", x.shape(1), ")");
  const bool i32 = is_dtype<int32_t>(indptr) && is_dtype<int32_t>(indices);
  const bool i64 = is_dtype<int64_t>(indptr) && is_dtype<int64_t>(indices);
  if (!(i32 || i64)) throw py::type_error("spmm_csr: indptr and indices must both be int32 or int64");
  const bool f32 = is_dtype<float>(data), f64 = is_dtype<double>(data);
  if (!(f32 || f64) || !data.dtype().is(x.dtype()) || !data.dtype().is(out.dtype()))
    throw py::type_error("spmm_csr: data, x and out must all be float32 or all float64");
  // The last row pointer bounds every access to indices/data (checked here, the rest in C++).
  const int64_t last = i32 ? static_cast<const int32_t*>(indptr.data())[M]
                           : static_cast<const int64_t*>(indptr.data())[M];
  BM_CHECK(last >= 0 && last <= indices.shape(0), "spmm_csr: a.indptr[-1] = ", last,
           " exceeds the number of stored entries ", indices.shape(0));
  if (f32 && i32) run<float, int32_t>(indptr, indices, data, x, out, M, N, transpose);
  else if (f32) run<float, int64_t>(indptr, indices, data, x, out, M, N, transpose);
  else if (i32) run<double, int32_t>(indptr, indices, data, x, out, M, N, transpose);
  else run<double, int64_t>(indptr, indices, data, x, out, M, N, transpose);
}

}  // namespace

void bind_svd(py::module_& m) {
  m.def("spmm_csr", &spmm, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("x"),
        py::arg("out"), py::arg("rows"), py::arg("cols"), py::arg("transpose") = false,
        "out = A @ x (or A.T @ x with transpose=True) for A in CSR form (rows x cols; int32 or "
        "int64 indices; float32/float64 data matching x and out). x and out need contiguous "
        "rows (any row stride). Releases the GIL.");
}
