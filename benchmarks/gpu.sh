#!/usr/bin/env bash
# The prepared GPU run: groups that each finish in <= 8 minutes on one H100/H200 (model builds included),
# ordered by value. Needs only this repository and a machine with torch, transformers, peft, accelerate and
# safetensors (no install: medtune runs from the checkout; no network: the Qwen3-1.7B shape is built with
# random weights, the tokenizer and the MedMCQA dev questions ship in medtune/resources). Never calls pip.
#
#   bash benchmarks/gpu.sh 1 --out DIR      # group 1 only, its files in DIR (default benchmarks/results,
#   bash benchmarks/gpu.sh 1 2 3            #   or $MEDTUNE_GPU_OUT); several groups in one call
#   bash benchmarks/gpu.sh --smoke          # every group on the CPU: tiny random Qwen3, 2-3 steps, < 2 min
#
# group  expected  what (each group writes at most 8 files, gpuN-*, into the output folder)
#   1     ~360 s   the headline: default recipe vs the prototype's training tokens/s and peak memory (each
#                  in its own process), the planner's prediction vs measured peak, the letter scorer on all
#                  4,183 MedMCQA dev questions (with and without the prefix cache), CPU<->GPU parity
#                  (fp32 and bf16); plus doctor. Files: gpu1-doctor, gpu1-train-vs-hackathon,
#                  gpu1-plan-vs-measured, gpu1-eval-medmcqa-dev, gpu1-parity (.json), gpu1-summary.json, gpu1-log.txt
#   2     ~420 s   the default recipe at micro-batch 16/32/64 without accumulation, torch.compile, and the
#                  eval at batch 128. Files: gpu2-train-bs{16,32,64}, gpu2-train-compile, gpu2-eval-bs128,
#                  gpu2-summary.json, gpu2-log.txt
#   3     ~300 s   optional packages, each skipped with the reason when absent: Liger kernels on vs off,
#                  fp8 training (torchao; divided by the measured fp8 rate), lm-evaluation-harness.
#                  Files: gpu3-train-liger-{on,off}, gpu3-train-fp8, gpu3-vs-lm-eval, gpu3-summary.json, gpu3-log.txt
# A step that fails or runs past the group's 8 minutes is recorded in the summary and the others still run;
# the exit status is 1 when a step failed (a skipped optional package is not a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the checkout itself, installed or not
pip() { echo "medtune gpu.sh: pip is never called here" >&2; return 1; }   # belt and braces

smoke=0; OUT=${MEDTUNE_GPU_OUT:-benchmarks/results}; groups=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#--out=} ;;
    1|2|3) groups+=("$1") ;;
    *) echo "usage: bash benchmarks/gpu.sh [1] [2] [3] [--out DIR] [--smoke]" >&2; exit 2 ;;
  esac
  shift
done
[ ${#groups[@]} -gt 0 ] || groups=(1 2 3)
mkdir -p "$OUT"
PY=${PYTHON:-python3}
MT=("$PY" -m medtune)
T0=$(date +%s); export MEDTUNE_GPU_T0=$T0

if [ $smoke = 1 ]; then
  DEV=cpu; BUDGET=${MEDTUNE_GPU_BUDGET:-600}   # the CPU of a CI machine is shared: a wide cap
  TINY=$(mktemp -d); trap 'rm -rf "$TINY"' EXIT
  "$PY" - "$TINY" <<'PYEOF'
import json, sys
from pathlib import Path
cfg = json.loads(Path("medtune/resources/shapes/qwen3-1.7b/config.json").read_text())
cfg.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, head_dim=16, max_window_layers=2)  # the real vocabulary: the shipped tokenizer fits
Path(sys.argv[1], "config.json").write_text(json.dumps(cfg, indent=1))
PYEOF
  SHAPE=("--shape" "$TINY" "--tokenizer" "qwen2.5")
  DATA=(data.train=[medmcqa-dev] data.eval=[] data.max_rows=200 data.eval_size=16 train.precision=fp32
        data.max_length=96 train.batch_size=2 train.grad_accum=1)   # the 151,936-token head dominates here
  TRAIN=(--steps 2 --warmup 1); EVAL_N=(--limit 16); PAR=(--shape "$TINY" --layers 0 --limit 16)
  LMEVAL=(--tasks medmcqa --limit 4)   # one task, four questions: the step runs, not the figure
  PLAN=(--device cpu --shape tiny --batches 2 --seq-len 64); BIGBATCH=(4); EVAL_BIG=16
else
  DEV=cuda; BUDGET=${MEDTUNE_GPU_BUDGET:-480}
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "medtune gpu.sh: no CUDA or ROCm GPU is visible to torch (python -m medtune doctor says why);" \
         "bash benchmarks/gpu.sh --smoke runs the same steps on the CPU" >&2; exit 2; }
  SHAPE=("--shape" "qwen3-1.7b" "--tokenizer" "qwen2.5")
  DATA=(data.train=[medmcqa-dev] data.eval=[] data.max_rows=null data.eval_size=100)
  TRAIN=(--steps 20 --warmup 5); EVAL_N=(); PAR=(--shape qwen3-1.7b --layers 4 --limit 200)
  LMEVAL=()
  PLAN=(--device cuda --shape qwen3-1.7b --batches 8 --seq-len 512); BIGBATCH=(16 32 64); EVAL_BIG=128
fi
RECIPE=qwen3-1.7b-medmcqa-lora
STEPS=()   # "group|name|status|seconds|note" lines for the summary

# step GROUP NAME COMMAND...: run it under the group's remaining time, log it, record how it ended
step() {
  local g=$1 name=$2; shift 2
  local left=$(( BUDGET - ($(date +%s) - GSTART) ))
  if [ $left -le 5 ]; then STEPS+=("$g|$name|not run|0|the group's ${BUDGET} s were used up"); return; fi
  echo "== [$g] $name: $*" | tee -a "$LOG"
  local s=$(date +%s)
  timeout --kill-after=10 "$left" "$@" >>"$LOG" 2>&1
  local rc=$? secs=$(( $(date +%s) - s ))
  local status=ok note=""
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=failed; note="stopped after ${secs} s (group budget)";
  elif [ $rc -ne 0 ]; then status=failed; note="exit $rc: $(tail -n 1 "$LOG" | cut -c1-300 | tr '|' '/')"; fi
  echo "== [$g] $name: $status in ${secs} s ${note}" | tee -a "$LOG"
  STEPS+=("$g|$name|$status|$secs|$note")
}
# skip GROUP NAME REASON: an optional step that cannot run here
skip() { echo "== [$1] $2: skipped: $3" | tee -a "$LOG"; STEPS+=("$1|$2|skipped|0|$3"); }
has() { "$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)" 2>/dev/null; }

for g in "${groups[@]}"; do
  GSTART=$(date +%s); LOG="$OUT/gpu$g-log.txt"; : > "$LOG"
  echo "medtune gpu.sh: group $g$([ $smoke = 1 ] && echo ' (--smoke, CPU)') -> $OUT" | tee -a "$LOG"
  case $g in
  1)
    step 1 doctor sh -c "\"\$@\" doctor --json > '$OUT/gpu1-doctor.json'" _ "${MT[@]}"
    step 1 train-vs-hackathon "${MT[@]}" bench train $RECIPE "${DATA[@]}" "${SHAPE[@]}" --vs hackathon-baseline \
      "${TRAIN[@]}" --device $DEV --out "$OUT/gpu1-train-vs-hackathon.json"
    step 1 plan-vs-measured "$PY" benchmarks/plan_vs_measured.py "${PLAN[@]}" --out "$OUT/gpu1-plan-vs-measured.json"
    step 1 eval-medmcqa-dev "${MT[@]}" bench eval $RECIPE "${DATA[@]}" --data medmcqa-dev "${SHAPE[@]}" "${EVAL_N[@]}" \
      --device $DEV --out "$OUT/gpu1-eval-medmcqa-dev.json"
    step 1 parity "$PY" -m medtune.bench.parity "${PAR[@]}" --out "$OUT/gpu1-parity.json"
    ;;
  2)
    for bs in "${BIGBATCH[@]}"; do
      step 2 train-bs$bs "${MT[@]}" bench train $RECIPE "${DATA[@]}" train.batch_size=$bs train.grad_accum=1 \
        "${SHAPE[@]}" "${TRAIN[@]}" --device $DEV --out "$OUT/gpu2-train-bs$bs.json"
    done
    if [ $smoke = 1 ]; then skip 2 train-compile "--smoke: torch.compile takes minutes on a CPU"
    else step 2 train-compile "${MT[@]}" bench train $RECIPE "${DATA[@]}" "${SHAPE[@]}" "${TRAIN[@]}" --compile \
      --device $DEV --out "$OUT/gpu2-train-compile.json"; fi
    step 2 eval-bs$EVAL_BIG "${MT[@]}" bench eval $RECIPE "${DATA[@]}" --data medmcqa-dev "${SHAPE[@]}" "${EVAL_N[@]}" \
      --batch-size $EVAL_BIG --no-compare --device $DEV --out "$OUT/gpu2-eval-bs$EVAL_BIG.json"
    ;;
  3)
    if [ $DEV = cpu ]; then skip 3 train-liger "Liger kernels run on a GPU only"
    elif ! has liger_kernel; then skip 3 train-liger "liger-kernel is not installed (not installed here: no network)"
    else
      step 3 train-liger-on "${MT[@]}" bench train $RECIPE "${DATA[@]}" train.liger=true "${SHAPE[@]}" "${TRAIN[@]}" \
        --device $DEV --out "$OUT/gpu3-train-liger-on.json"
      step 3 train-liger-off "${MT[@]}" bench train $RECIPE "${DATA[@]}" train.liger=false "${SHAPE[@]}" "${TRAIN[@]}" \
        --device $DEV --out "$OUT/gpu3-train-liger-off.json"
    fi
    if [ $DEV = cpu ]; then skip 3 train-fp8 "fp8 training needs an FP8 GPU (sm_89+, gfx942/gfx950)"
    elif ! has torchao; then skip 3 train-fp8 "torchao is not installed (not installed here: no network)"
    else step 3 train-fp8 "${MT[@]}" bench train $RECIPE "${DATA[@]}" train.fp8=true "${SHAPE[@]}" "${TRAIN[@]}" \
      --device $DEV --out "$OUT/gpu3-train-fp8.json"; fi
    if ! has lm_eval; then skip 3 vs-lm-eval "lm-evaluation-harness (lm_eval) is not installed"
    elif [ ! -d ../shared/data ]; then skip 3 vs-lm-eval "benchmarks/vs_lm_eval.py reads ../shared/data, absent here"
    else step 3 vs-lm-eval "$PY" benchmarks/vs_lm_eval.py "$OUT/gpu3-vs-lm-eval.json" "${LMEVAL[@]}" --device $DEV; fi
    for pkg in flash_attn vllm; do has $pkg || skip 3 "$pkg" "$pkg is not installed; no step uses it without it"; done
    # DeepSpeed ZeRO-2/3 through the shipped accelerate configs (untested elsewhere: docs/multinode.md)
    NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
    for z in 2 3; do
      if [ $DEV = cpu ]; then skip 3 "deepspeed-zero$z" "--smoke: the CPU run of these configs is tests/test_distributed.py"
      elif ! has deepspeed; then skip 3 "deepspeed-zero$z" "deepspeed is not installed"
      elif [ ! -f "${MEDTUNE_DS_MODEL:-/nonexistent}/config.json" ]; then
        skip 3 "deepspeed-zero$z" "set MEDTUNE_DS_MODEL to a local model folder (medtune train loads real weights)"
      else step 3 "deepspeed-zero$z" "$PY" -m accelerate.commands.launch --config_file \
        configs/accelerate/deepspeed-zero$z.yaml --num_processes "$NGPU" -m medtune train $RECIPE "${DATA[@]}" \
        model.name="$MEDTUNE_DS_MODEL" train.max_steps=10 train.save_steps=5 baseline_eval=false output_dir="$(mktemp -d)/run"; fi
    done
    ;;
  esac
  printf '%s\n' "${STEPS[@]}" | grep "^$g|" | "$PY" benchmarks/gpu_summary.py "$OUT" "$g" "$smoke" \
    "$(( $(date +%s) - GSTART ))" | tee -a "$LOG"
done

total=$(( $(date +%s) - T0 ))
echo "medtune gpu.sh: groups ${groups[*]} took ${total} s; results in $OUT"
printf '%s\n' "${STEPS[@]}" | grep -q '|failed|' && exit 1
exit 0
