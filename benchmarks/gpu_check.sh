#!/usr/bin/env bash
# One command for a GPU machine (python3 with torch, cupy, pybind11, scikit-build-core, cmake and
# ninja preinstalled; no network needed): install bigmodel from this checkout, print info(), run
# the CUDA tests, then the GPU benchmark table. Everything is also written to $OUT (if set):
# gpu_check.log (all output) and compare_gpu.md (the table). A test failure does not stop the
# benchmark; the exit status is non-zero if the install, the tests or the benchmark failed.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=/dev/null
if [[ -n "${OUT:-}" ]]; then mkdir -p "$OUT"; LOG="$OUT/gpu_check.log"; : >"$LOG"; fi
say() { echo "== $*" | tee -a "$LOG"; }

say "$(date -u) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi unavailable')"
say "pip install --no-build-isolation --no-deps ."
# PIP_BREAK_SYSTEM_PACKAGES: a throwaway GPU box may use a distribution-managed python3.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-build-isolation --no-deps -v . 2>&1 \
  | tail -n 40 | tee -a "$LOG"
# Run from outside the checkout so the installed package (not ./python) is imported.
say "bigmodel.info()"
(cd /tmp && python3 -c 'import bigmodel; print(bigmodel.info())') 2>&1 | tee -a "$LOG"

say "pytest -m cuda"
set +e
python3 -m pytest -q -m cuda tests 2>&1 | tee -a "$LOG"
test_rc=${PIPESTATUS[0]}
say "benchmarks/compare_gpu.py"
python3 benchmarks/compare_gpu.py 2>&1 | tee -a "$LOG" | tee "${OUT:-/tmp}/compare_gpu.md"
bench_rc=${PIPESTATUS[0]}
say "benchmarks/compare_gpu_rnn.py"
python3 benchmarks/compare_gpu_rnn.py 2>&1 | tee -a "$LOG" | tee "${OUT:-/tmp}/compare_gpu_rnn.md"
[[ ${PIPESTATUS[0]} == 0 ]] || bench_rc=1
set -e
say "tests exit status: $test_rc, benchmark exit status: $bench_rc"
exit $(( test_rc != 0 || bench_rc != 0 ))
