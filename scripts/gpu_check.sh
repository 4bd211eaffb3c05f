#!/usr/bin/env bash
# On a host with an NVIDIA GPU: export a model to a TensorRT plan, run it (and serve it with Triton
# when an NGC tritonserver is on PATH) and compare with the ONNX results. Needs `pip install tensorrt`
# in the app venv. Exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
nvidia-smi -L
"$PY" -c "import tensorrt; print('tensorrt', tensorrt.__version__)"
exec "$PY" scripts/gpu_check.py
