#!/usr/bin/env bash
# The GPU figures in one go (docs/benchmarks.md, "GPU"): on a GPU machine with no network, from the
# repository root. Needs what bench/gpu_prepare.sh made here: .gpu/ carried by this call, and the
# onnxruntime-gpu parts stashed in /tmp/ortparts by the calls before it (or a whole wheel in .gpu/).
# Installs into /tmp/vias-site (the image's python3 keeps its own packages), then runs
# bench/bench_streams.py: 1, 4, 16 and 32 concurrent streams against raw batched onnxruntime at
# the same batch size, GPU utilisation from nvidia-smi, RSS per stream. About 4-6 minutes.
#
#   stash a part (one call per part):  STASH=1 bash bench/gpu_check.sh     (carry .ortpart)
#   run:                               bash bench/gpu_check.sh             (carry .gpu)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SITE=/tmp/vias-site

if [ "${STASH:-0}" = 1 ]; then
  mkdir -p /tmp/ortparts && cp .ortpart/part-* /tmp/ortparts/ && ls -la /tmp/ortparts
  exit 0
fi

log() { echo "[gpu_check $(date +%T)] $*" | tee -a "$OUT/gpu_check.log"; }
name=$(cat .gpu/ort-wheel-name 2>/dev/null || echo onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl)
wheel=""
if [ -f ".gpu/$name" ]; then
  wheel=".gpu/$name"
elif ls /tmp/ortparts/part-* >/dev/null 2>&1; then
  cat /tmp/ortparts/part-* >"/tmp/$name" && wheel="/tmp/$name"
fi
[ -n "$wheel" ] || log "no onnxruntime-gpu wheel (.gpu/$name or /tmp/ortparts): the image's onnxruntime runs on the CPU"
log "python: $($PY --version 2>&1); installing into $SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
  .gpu/wheels/*.whl $wheel 2>&1 | tail -3
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# onnxruntime-gpu finds CUDA 13, cuDNN and cuBLAS in the image's nvidia-* Python packages.
libs=$("$PY" - <<'PY'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
print(":".join(sorted({os.path.dirname(p) for r in roots for p in glob.glob(os.path.join(r, "nvidia", "**", "lib*.so*"), recursive=True)})))
PY
)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/gpu_check.log"
"$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" 2>&1 | tee -a "$OUT/gpu_check.log"
model=.gpu/person-fall-yolov8.fp16.onnx
[ -f "$model" ] || model=.cache/models/built/person-fall-yolov8-0.1.2+dynamic-size-fp16/person-fall-yolov8.onnx
export PYTHONUNBUFFERED=1 VIAS_ORT_THREADS=${VIAS_ORT_THREADS:-4} VIAS_PRELOAD_CUDA=1
log "streams bench on $model"
timeout 420 "$PY" bench/bench_streams.py --model "$model" --streams "${STREAMS:-1,4,16,32}" \
  --frames "${FRAMES:-150}" --rounds "${ROUNDS:-2}" --fps 25 2>&1 | tee "$OUT/bench_streams.txt"
status=${PIPESTATUS[0]}
log "done (status $status); figures: $OUT/bench_streams.txt (last line BENCH_JSON)"
exit "$status"
