#!/usr/bin/env bash
# Fast developer build without pip: configures CMake in build/dev-<cuda>, builds, and copies the
# extension modules into python/bigmodel/ so that `PYTHONPATH=python python -m pytest` works.
# Usage: tools/dev_build.sh [cuda=OFF|ON|AUTO]   (pip install . remains the real install path)
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA=${1:-OFF}
BUILD=build/dev-$(echo "$CUDA" | tr A-Z a-z)
PY=${PYTHON:-python3}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBIGMODEL_CUDA="$CUDA" \
  -DSKBUILD_PROJECT_NAME=bigmodel -DSKBUILD_PROJECT_VERSION=0.1.0 \
  -DPython_EXECUTABLE="$(command -v $PY)" -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}"
# Copy then rename: a process that has the old module mapped keeps its inode (an in-place cp
# would change the pages under it and kill it with SIGBUS).
for so in "$BUILD"/_core*.so "$BUILD"/_cuda*.so; do
  [ -e "$so" ] || continue
  cp "$so" "python/bigmodel/.$(basename "$so").tmp" && mv -f "python/bigmodel/.$(basename "$so").tmp" "python/bigmodel/$(basename "$so")"
done
echo "built into python/bigmodel ($BUILD)"
