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
cp "$BUILD"/_core*.so python/bigmodel/
if ls "$BUILD"/_cuda*.so >/dev/null 2>&1; then cp "$BUILD"/_cuda*.so python/bigmodel/; fi
echo "built into python/bigmodel ($BUILD)"
