#!/usr/bin/env bash
# The GPU path, checked in one run that fits 8 minutes on one GPU:
#   1. the CUDA tests (tests/merge/test_cuda.py, the device tests of evolve/breed and the CLI)
#   2. linear and TIES at ~0.27B: kinmerge on cuda vs cpu vs `mergekit-yaml --cuda` when
#      mergekit is installed (bytes + wall times; kinmerge cuda must give cpu's bytes)
#   3. (GPU only) evolution candidates at ~0.27B merged, cached and scored on cuda
#      (benchmarks/bench_candidates.py --device cuda: without and with the worker cache)
#   4. one evolve and one breed on the shipped zoo with `device: cuda`, timed against cpu
# Without a GPU it runs the CPU half of each step (the CUDA tests then skip), so the script
# cannot rot. Each step has its own time limit; the whole stays under 8 minutes.
#
#   benchmarks/gpu_check.sh                 # work files in a temporary folder, removed after
#   WORK=/tmp/gpu-check KEEP=1 benchmarks/gpu_check.sh
#   GPU_CHECK_PARAMS=0.05B benchmarks/gpu_check.sh    # a smaller merge step
#   LIMIT_SCALE=4 benchmarks/gpu_check.sh   # every step's limit x4 (a slow or busy machine)
# Output: each step's lines, then one summary line per step; exit 1 if a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-$(mktemp -d /tmp/kmgpu-XXXXXX)}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc --all)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"

GPU=$($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")')
echo "gpu_check: $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname), GPU: ${GPU:-none (CPU half only)}," \
     "torch $($PY -c 'import torch; print(torch.__version__)'), $(nproc --all) CPUs"
declare -a SUMMARY
status=0

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$(($2 * ${LIMIT_SCALE:-1})); shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
  local rc=${PIPESTATUS[0]}
  local took=$((SECONDS - t0))
  case $rc in
    0) SUMMARY+=("$name: ok (${took}s)") ;;
    124) SUMMARY+=("$name: TIMED OUT after ${limit}s"); status=1 ;;
    *) SUMMARY+=("$name: FAILED (exit $rc, ${took}s)"); status=1 ;;
  esac
}

step cuda-tests 90 $PY -m pytest -q -p no:cacheprovider -rs tests/merge/test_cuda.py \
  tests/evolve/test_device.py tests/cli/test_merge_cli.py -k "cuda or device or gpu"
step merges 200 $PY benchmarks/gpu_check.py merges --work "$WORK" --params "${GPU_CHECK_PARAMS:-0.27B}"
if [ -n "$GPU" ]; then  # evolution candidates on the GPU, without and with the worker cache
  step candidates 90 $PY benchmarks/bench_candidates.py --sizes "${GPU_CHECK_PARAMS:-0.27B}" \
    --candidates 2 --children 0 --device cuda --root "$WORK/models" --json
fi
step search 100 $PY benchmarks/gpu_check.py search --work "$WORK"

echo "== summary (GPU: ${GPU:-none})"
printf '%s\n' "${SUMMARY[@]}"
exit $status
