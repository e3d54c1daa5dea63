// pybind11 glue for the CUDA CSR kernels of truncated SVD: argument checks, GIL release, no math.
//
// As python/bigmodel/ops/svd.py calls them (device pointers as integers, lengths of the arrays
// behind them, dtypes as NumPy names, stream_ptr = cupy.cuda.get_current_stream().ptr):
//   spmm_csr(indptr_ptr, indptr_len, indices_ptr, indices_len, data_ptr, data_len, rows, cols,
//            index_dtype, dtype, x_ptr, x_shape, ldx, y_ptr, y_shape, ldy, work_ptr, work_bytes,
//            stream_ptr)                               y = A @ x
//   csr_transpose(indptr_ptr, indptr_len, indices_ptr, indices_len, data_ptr, data_len, rows,
//                 cols, index_dtype, dtype, out_indptr_ptr, out_indptr_len, out_indices_ptr,
//                 out_indices_len, out_data_ptr, out_data_len, work_ptr, work_bytes, stream_ptr)
//   spmm_csr_workspace_bytes(rows, stored, K, dtype), csr_transpose_workspace_bytes(rows, cols,
//                 stored, index_dtype)
// Sizes and lengths are checked here; the matrix's contents (indptr order and bounds, column
// indices) on the device by the launcher, before any kernel reads through them.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"
#include "cuda/svd.h"

namespace py = pybind11;
using bm::cuda::CsrMatrix;
using bm::cuda::DType;
using bm::cuda::IndexType;

namespace {

DType parse_dtype(const std::string& s, const char* fn) {
  if (s == "float32") return DType::f32;
  if (s == "float64") return DType::f64;
  throw py::type_error(bm::str_cat(fn, ": dtype must be 'float32' or 'float64', got '", s, "'"));
}

IndexType parse_index(const std::string& s, const char* fn) {
  if (s == "int32") return IndexType::i32;
  if (s == "int64") return IndexType::i64;
  throw py::type_error(
      bm::str_cat(fn, ": index_dtype must be 'int32' or 'int64', got '", s, "'"));
}

CsrMatrix make_csr(std::uintptr_t indptr, int64_t indptr_len, std::uintptr_t indices,
                   int64_t indices_len, std::uintptr_t data, int64_t data_len, int64_t rows,
                   int64_t cols, const std::string& index_dtype, const std::string& dtype,
                   const char* fn) {
  BM_CHECK(rows >= 0 && cols >= 0, fn, ": negative shape (", rows, ", ", cols, ")");
  BM_CHECK(indptr_len == rows + 1, fn, ": indptr has ", indptr_len,
           " entries, expected rows + 1 = ", rows + 1);
  BM_CHECK(indices_len == data_len, fn, ": indices (", indices_len, ") and data (", data_len,
           ") differ in length");
  CsrMatrix a;
  a.rows = rows, a.cols = cols, a.stored = indices_len;
  a.indptr = reinterpret_cast<const void*>(indptr);
  a.indices = reinterpret_cast<const void*>(indices);
  a.data = reinterpret_cast<const void*>(data);
  a.index_type = parse_index(index_dtype, fn);
  a.dtype = parse_dtype(dtype, fn);
  return a;
}

void check_shape(const std::vector<int64_t>& s, const char* fn, const char* name) {
  BM_CHECK(s.size() == 2 && s[0] >= 0 && s[1] >= 0, fn, ": ", name,
           "_shape must be [rows, cols] with sizes >= 0");
}

void spmm_csr(std::uintptr_t indptr, int64_t indptr_len, std::uintptr_t indices,
              int64_t indices_len, std::uintptr_t data, int64_t data_len, int64_t rows,
              int64_t cols, const std::string& index_dtype, const std::string& dtype,
              std::uintptr_t x, const std::vector<int64_t>& x_shape, int64_t ldx, std::uintptr_t y,
              const std::vector<int64_t>& y_shape, int64_t ldy, std::uintptr_t work,
              int64_t work_bytes, std::uintptr_t stream) {
  const char* fn = "spmm_csr";
  const CsrMatrix a = make_csr(indptr, indptr_len, indices, indices_len, data, data_len, rows,
                               cols, index_dtype, dtype, fn);
  check_shape(x_shape, fn, "x");
  check_shape(y_shape, fn, "y");
  BM_CHECK(x_shape[0] == cols, fn, ": x has ", x_shape[0], " rows, expected cols = ", cols);
  BM_CHECK(y_shape[0] == rows && y_shape[1] == x_shape[1], fn, ": y has shape (", y_shape[0], ", ",
           y_shape[1], "), expected (", rows, ", ", x_shape[1], ")");
  BM_CHECK(ldx >= x_shape[1] && ldy >= y_shape[1], fn,
           ": row strides must be >= the number of columns (ldx=", ldx, ", ldy=", ldy, ", K=",
           x_shape[1], ")");
  BM_CHECK(work_bytes >= 0, fn, ": work_bytes must be >= 0");
  py::gil_scoped_release nogil;  // waits for the validation kernel
  bm::cuda::launch_spmm_csr(a, reinterpret_cast<const void*>(x), ldx, reinterpret_cast<void*>(y),
                            ldy, x_shape[1], reinterpret_cast<void*>(work),
                            static_cast<std::size_t>(work_bytes), stream);
}

void csr_transpose(std::uintptr_t indptr, int64_t indptr_len, std::uintptr_t indices,
                   int64_t indices_len, std::uintptr_t data, int64_t data_len, int64_t rows,
                   int64_t cols, const std::string& index_dtype, const std::string& dtype,
                   std::uintptr_t out_indptr, int64_t out_indptr_len, std::uintptr_t out_indices,
                   int64_t out_indices_len, std::uintptr_t out_data, int64_t out_data_len,
                   std::uintptr_t work, int64_t work_bytes, std::uintptr_t stream) {
  const char* fn = "csr_transpose";
  const CsrMatrix a = make_csr(indptr, indptr_len, indices, indices_len, data, data_len, rows,
                               cols, index_dtype, dtype, fn);
  BM_CHECK(out_indptr_len == cols + 1, fn, ": out_indptr has ", out_indptr_len,
           " entries, expected cols + 1 = ", cols + 1);
  BM_CHECK(out_indices_len == indices_len && out_data_len == indices_len, fn,
           ": out_indices and out_data need ", indices_len, " entries, got ", out_indices_len,
           " and ", out_data_len);
  BM_CHECK(work_bytes >= 0, fn, ": work_bytes must be >= 0");
  py::gil_scoped_release nogil;
  bm::cuda::launch_csr_transpose(a, reinterpret_cast<void*>(out_indptr),
                                 reinterpret_cast<void*>(out_indices),
                                 reinterpret_cast<void*>(out_data), reinterpret_cast<void*>(work),
                                 static_cast<std::size_t>(work_bytes), stream);
}

}  // namespace

void bind_cuda_svd(py::module_& m) {
  m.def("spmm_csr", &spmm_csr, py::arg("indptr_ptr"), py::arg("indptr_len"),
        py::arg("indices_ptr"), py::arg("indices_len"), py::arg("data_ptr"), py::arg("data_len"),
        py::arg("rows"), py::arg("cols"), py::arg("index_dtype"), py::arg("dtype"),
        py::arg("x_ptr"), py::arg("x_shape"), py::arg("ldx"), py::arg("y_ptr"),
        py::arg("y_shape"), py::arg("ldy"), py::arg("work_ptr"), py::arg("work_bytes"),
        py::arg("stream_ptr"),
        "y = A @ x for A in CSR form (rows x cols) on device pointers; x (cols, K) and y (rows, K) "
        "row-major with row strides ldx, ldy (elements). Validates A on the device first "
        "(ValueError for a bad indptr or column index; synchronizes the stream once). Workspace: "
        "spmm_csr_workspace_bytes. Deterministic. Releases the GIL.");
  m.def("csr_transpose", &csr_transpose, py::arg("indptr_ptr"), py::arg("indptr_len"),
        py::arg("indices_ptr"), py::arg("indices_len"), py::arg("data_ptr"), py::arg("data_len"),
        py::arg("rows"), py::arg("cols"), py::arg("index_dtype"), py::arg("dtype"),
        py::arg("out_indptr_ptr"), py::arg("out_indptr_len"), py::arg("out_indices_ptr"),
        py::arg("out_indices_len"), py::arg("out_data_ptr"), py::arg("out_data_len"),
        py::arg("work_ptr"), py::arg("work_bytes"), py::arg("stream_ptr"),
        "The CSR form of A.T (cols x rows) into out_* (same index dtype and dtype as A; stable: "
        "A's order within each column). Validates A like spmm_csr. Releases the GIL.");
  m.def("spmm_csr_workspace_bytes",
        [](int64_t rows, int64_t stored, int64_t K, const std::string& dtype) {
          return bm::cuda::spmm_csr_workspace_bytes(rows, stored, K,
                                                    parse_dtype(dtype, "spmm_csr"));
        },
        py::arg("rows"), py::arg("stored"), py::arg("K"), py::arg("dtype"),
        "Workspace bytes spmm_csr needs (stored = length of indices).");
  m.def("csr_transpose_workspace_bytes",
        [](int64_t rows, int64_t cols, int64_t stored, const std::string& index_dtype) {
          return bm::cuda::csr_transpose_workspace_bytes(rows, cols, stored,
                                                         parse_index(index_dtype, "csr_transpose"));
        },
        py::arg("rows"), py::arg("cols"), py::arg("stored"), py::arg("index_dtype"),
        "Workspace bytes csr_transpose needs.");
}
