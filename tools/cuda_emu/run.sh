#!/usr/bin/env bash
# Checks the CUDA kernels' index logic without a GPU: compiles csrc/cuda/*.cu as C++ against
# a host emulation of CUDA (emu_core.h plus any emu_<topic>.h here; launches of the form
# `kernel<<<grid, threads, 0, stream>>>(params)` -- one parameter struct, no dynamic shared
# memory -- are rewritten to emu::launch), then
#   1. every *_harness.cpp here (gemm_harness: random problems against a double reference),
#      with ASan + UBSan (alignment);
#   2. (E2E=1) tests/test_*cuda*.py (or the files in $TESTS) through the real pybind11 bindings
#      and bigmodel.ops, with a NumPy-backed stand-in for CuPy (fake_cupy/). Expected failure
#      there: the host-pointer test (every pointer is "device" memory in the emulation). The
#      `large` tests are slow; deselected. HARNESS=0 skips step 1.
# Usage: tools/cuda_emu/run.sh [reps]      (reps per shape and mode, default 2; ~3 min on 2 cores)
# It proves nothing about speed, bank conflicts or real WMMA fragment layouts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMU=$ROOT/tools/cuda_emu
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/inc" "$W/src/cuda" "$W/src/common"
cp "$EMU"/emu_*.h "$EMU"/*_harness.cpp "$W/inc/"  # one emu_core.h for every include
for h in cuda_runtime.h cuda_fp16.h cuda_bf16.h mma.h; do printf '#pragma once\n#include "emu_core.h"\n' >"$W/inc/$h"; done
cp "$ROOT/csrc/common/check.h" "$W/src/common/"
for f in "$ROOT"/csrc/cuda/*; do
  sed -E 's/(\w+(<[^<>]*>)?)<<<([^,]+), ([^,]+), 0, stream>>>\((\w+)\)/::emu::launch(\1, \3, \4, \5)/' "$f" >"$W/src/cuda/$(basename "$f")"
done
# Count vector loads so the harness can show the fast path ran.
sed -i 's/        r\[i\] = load4(ptr);/        r[i] = load4(ptr); __atomic_add_fetch(\&emu_vec_loads, 1, __ATOMIC_RELAXED);/' "$W/src/cuda/gemm_tiles.cuh"
CXX=${CXX:-g++}
FLAGS="-std=c++20 -pthread -I$W/inc -I$W/src -include emu_core.h"
for h in "$EMU"/emu_*.h; do
  [[ "$(basename "$h")" == emu_core.h ]] || FLAGS="$FLAGS -include $(basename "$h")"
done
if [[ "${HARNESS:-1}" == 1 ]]; then
  for hs in "$W"/inc/*_harness.cpp; do
    exe="$W/$(basename "$hs" .cpp)"
    $CXX $FLAGS -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=alignment \
      -x c++ "$hs" "$W"/src/cuda/*.cu -o "$exe"
    "$exe" "${1:-2}"
  done
fi

if [[ "${E2E:-0}" == 1 ]]; then
  PY=${PYTHON:-python3}
  mkdir -p "$W/py"
  cp -r "$ROOT/python/bigmodel" "$W/py/"
  rm -f "$W"/py/bigmodel/_cuda*.so
  cp -r "$EMU/fake_cupy/cupy" "$W/py/"
  cp -r "$EMU/fake_cupy/cupyx" "$W/py/"
  $CXX $FLAGS -O2 -shared -fPIC -DEMU_ONE_DEVICE -I"$ROOT/csrc" $("$PY" -m pybind11 --includes) \
    -x c++ "$W"/src/cuda/*.cu "$ROOT"/csrc/bindings/*cuda*.cpp \
    -o "$W/py/bigmodel/_cuda$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
  # EMU_KEEP=DIR keeps the emulated package (bigmodel + fake cupy) for quick reruns:
  # PYTHONPATH=DIR python -m pytest tests/test_x_cuda.py
  if [[ -n "${EMU_KEEP:-}" ]]; then rm -rf "$EMU_KEEP"; cp -r "$W/py" "$EMU_KEEP"; fi
  (cd "$ROOT" && PYTHONPATH="$W/py" "$PY" -m pytest -q -p no:cacheprovider ${TESTS:-tests/test_*cuda*.py} -k "not large") || true
fi
