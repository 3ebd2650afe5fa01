#!/usr/bin/env bash
# Run HERE (the machine with network), from the repository root, before bench/gpu_check.sh runs on
# a GPU machine that has no network. It fills two git-ignored folders (.gitignore):
#
#   .gpu/      the fp16 person model (22 MB, made by fetch_models) and the small wheels the GPU
#              image lacks for Python 3.12 (Django, asgiref, sqlparse, supervision, defusedxml,
#              pyDeprecate: 9 MB); carried by the call that runs gpu_check.sh;
#   .ortpart/  onnxruntime-gpu 1.31.1 (cp312, CUDA 13: it links libcublas.so.13, which the GPU
#              image's nvidia-* packages provide) split into 60 MiB parts: the wheel is 244 MiB and
#              one call carries at most 64 MiB, so each part travels in its own call, within the
#              30 s the machine stays warm, and is stashed in /tmp/ortparts there (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p .gpu/wheels .ortpart
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q --no-deps "${PLATFORM[@]}" -d .gpu/wheels \
  Django==5.2.19 asgiref==3.13.0 sqlparse==0.6.1 supervision==0.30.9 defusedxml==0.7.1 pyDeprecate==0.13.0
VIAS_SKIP_FETCH= "$PY" manage.py fetch_models --download-only >/dev/null
cp .cache/models/built/person-fall-yolov8-0.1.2+dynamic-size-fp16/person-fall-yolov8.fp16.onnx .gpu/person-fall-yolov8.fp16.onnx
wheel_dir=$(mktemp -d)
"$PY" -m pip download -q --no-deps "${PLATFORM[@]}" -d "$wheel_dir" onnxruntime-gpu==1.31.1
rm -f .ortpart/part-*
split -b 60M -d "$wheel_dir"/onnxruntime_gpu-*.whl .ortpart/part-
basename "$wheel_dir"/onnxruntime_gpu-*.whl >.gpu/ort-wheel-name
rm -rf "$wheel_dir"
du -sh .gpu .ortpart/part-*
