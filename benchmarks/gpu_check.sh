#!/usr/bin/env bash
# The GPU path, checked in one run that fits 8 minutes on one GPU:
#   1. the CUDA tests (tests/merge/test_cuda.py, the device tests of evolve/breed and the CLI);
#      every registered method's cpu-vs-cuda bytes are also written to cuda-bytes.jsonl and
#      printed as a table (which methods give cpu's bytes on this card, and how far the rest are)
#   2. linear and TIES at ~0.27B: kinmerge on cuda vs cpu vs `mergekit-yaml --cuda` when
#      mergekit is installed (bytes + wall times; kinmerge cuda must give cpu's bytes)
#   3. (GPU only) evolution candidates at ~0.27B merged, cached and scored on cuda
#      (benchmarks/bench_candidates.py --device cuda: without and with the worker cache)
#   4. one evolve and one breed on the shipped zoo with `device: cuda`, timed against cpu
# Without a GPU it runs the CPU half of each step (the CUDA tests then skip), so the script
# cannot rot. Each step has its own time limit; the whole took 4.5 minutes on an H100
# (2026-12-06, benchmarks/results/2026-12-06-h100/).
#
#   benchmarks/gpu_check.sh                 # work files in a temporary folder, removed after
#   WORK=/tmp/gpu-check KEEP=1 benchmarks/gpu_check.sh
#   GPU_CHECK_PARAMS=0.05B benchmarks/gpu_check.sh    # a smaller merge step
#   LIMIT_SCALE=4 benchmarks/gpu_check.sh   # every step's limit x4 (a slow or busy machine)
# Output: each step's lines, then one summary line per step; exit 1 if a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# the project's venv, else the python3 on PATH (a GPU machine's own torch with CUDA; kinmerge's
# other dependencies must be importable there, e.g. from wheels with PYTHONPATH)
if [ -z "${PY:-}" ]; then [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; fi
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

export KINMERGE_CUDA_BYTES="$WORK/cuda-bytes.jsonl"
rm -f "$KINMERGE_CUDA_BYTES"
step cuda-tests 150 $PY -m pytest -q -p no:cacheprovider -rs tests/merge/test_cuda.py \
  tests/evolve/test_device.py tests/cli/test_merge_cli.py -k "cuda or device or gpu"
if [ -s "$KINMERGE_CUDA_BYTES" ]; then
  echo "== cpu-vs-cuda bytes, every method (tensors that differ / tensors; largest difference" \
       "relative to the tensor's largest magnitude)"
  $PY - "$KINMERGE_CUDA_BYTES" <<'PYEOF'
import json, sys
rows = [json.loads(x) for x in open(sys.argv[1])]
for r in sorted(rows, key=lambda r: (r["method"], r["dtype"])):
    same = "same bytes" if not r["differ"] else f"{r['differ']}/{r['tensors']} differ, {r['worst_rel']:.1e}"
    print(f"  {r['method']:<16} {r['dtype']:<9} {same}")
print(f"  {sum(not r['differ'] for r in rows)} of {len(rows)} cases give cpu's bytes")
PYEOF
fi
step merges 200 $PY benchmarks/gpu_check.py merges --work "$WORK" --params "${GPU_CHECK_PARAMS:-0.27B}"
if [ -n "$GPU" ]; then  # evolution candidates on the GPU, without and with the worker cache
  step candidates 150 $PY benchmarks/bench_candidates.py --sizes "${GPU_CHECK_PARAMS:-0.27B}" \
    --candidates 2 --children 0 --device cuda --root "$WORK/models" --json
fi
step search 100 $PY benchmarks/gpu_check.py search --work "$WORK"

echo "== summary (GPU: ${GPU:-none})"
printf '%s\n' "${SUMMARY[@]}"
exit $status
