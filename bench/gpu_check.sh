#!/usr/bin/env bash
# The GPU run in one script: every lab in full mode on the GPU with the hub unreachable (the stand-ins and,
# when DIALOGSUM_DIR is set, the real DialogSum), then the GPU benchmarks. Everything goes to one folder.
#
#   bash bench/gpu_check.sh [OUT_DIR]        # default OUT_DIR: build/gpu_check
#   bash bench/gpu_check.sh --dry-run        # print the plan and check every piece exists, run nothing heavy
#
# Needs: a CUDA GPU, the project's environment (make setup). Figures go to bench/RESULTS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT="${1:-build/gpu_check}"
export HF_HUB_OFFLINE=1 COURSE_SMOKE=0

steps=(
  "labs|$PY -m course_lib.labs --full --out $OUT/labs"
  "transformer_step|$PY bench/gpu_transformer_step.py --steps 20"
  "transformer_step_compiled|$PY bench/gpu_transformer_step.py --steps 20 --compile"
  "memory_check|$PY bench/gpu_memory_check.py --out $OUT/gpu_memory_check.json"
  "training_gpu|$PY bench/bench_training.py gpu"
  "finetune|$PY bench/gpu_finetune.py --steps 300 --n-test 100 --out $OUT/finetune"
)

if [ "$DRY" = 1 ]; then
  echo "dry run: output folder $OUT; HF_HUB_OFFLINE=1 COURSE_SMOKE=0"
  for s in "${steps[@]}"; do
    name="${s%%|*}"; cmd="${s#*|}"
    echo "would run [$name]: $cmd"
    script=$(echo "$cmd" | awk '{print $2}')
    if [ "$script" = "-m" ]; then $PY -m course_lib.labs --help > /dev/null; else [ -f "$script" ] && $PY "$script" --help > /dev/null; fi
  done
  $PY -c "import torch; print('cuda available:', torch.cuda.is_available())"
  echo "dry run ok: every step's entry point answers --help"
  exit 0
fi

$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: this script is for a GPU machine (try --dry-run)')"
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
status=0
for s in "${steps[@]}"; do
  name="${s%%|*}"; cmd="${s#*|}"
  echo "== $name: $cmd"
  start=$(date +%s)
  if $cmd > "$OUT/$name.log" 2>&1; then rc=0; else rc=$?; status=1; fi
  echo "$name rc=$rc seconds=$(( $(date +%s) - start ))" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.log"
done
echo "all output in $OUT (summary.txt, *.log, labs/summary.md)"
exit $status
