#!/usr/bin/env bash
# Every GPU measurement medtune records, in one command (needs a CUDA or ROCm GPU; writes JSON under
# benchmarks/results/). Run from the repository root after installing medtune with a GPU build of torch:
#   bash benchmarks/gpu.sh                 # everything
#   bash benchmarks/gpu.sh train eval      # only these groups: plan, train, eval, api
# A step that fails (or needs a package that is neither installed nor installable, e.g. on a machine
# without internet) is reported and skipped; the others still run, and the exit status is 1 at the end
# if any step failed. MEDTUNE_BENCH_TOKENIZER names a local tokenizer folder (default: Qwen2.5's from
# ../shared/models when there, else the Hub's Qwen/Qwen3-1.7B).
set -uo pipefail
cd "$(dirname "$0")/.."
groups=${*:-plan train eval api}
want() { [[ " $groups " == *" $1 "* ]]; }
failed=()
step() {
  echo "== $*"
  "$@" || { echo "medtune gpu.sh: step failed: $*" >&2; failed+=("$*"); }
}
# need MODULE "PIP NAMES" WHAT: import it, else try to install it, else say what is skipped
need() {
  python -c "import $1" 2>/dev/null && return 0
  pip install -q $2 >/dev/null 2>&1 && python -c "import $1" 2>/dev/null && return 0
  echo "medtune gpu.sh: $2 is not installed and could not be installed (no internet? install its wheel): $3 skipped" >&2
  failed+=("$3 (needs $2)")
  return 1
}

python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
  echo "medtune gpu.sh: no CUDA or ROCm GPU is visible to torch (medtune doctor says why)" >&2; exit 2; }
tag=$(python -c "import torch; n=torch.cuda.get_device_name(0).lower(); print('h100' if 'h100' in n else 'h200' if 'h200' in n else 'mi300x' if 'mi300' in n else n.split()[-1])")
R=benchmarks/results
medtune doctor --json > "$R/doctor-$tag.json" || failed+=("medtune doctor --json")

# Data: the MedMCQA dev file shipped with medtune (the Hub train split needs the network); the
# tokenizer: Qwen2.5's (the same vocabulary as Qwen3's) from ../shared when there, else the Hub's Qwen3.
TOK=${MEDTUNE_BENCH_TOKENIZER:-../shared/models/qwen2.5-tokenizer}
[ -d "$TOK" ] || TOK=Qwen/Qwen3-1.7B
DATA=(data.train=[medmcqa-dev] data.eval=[] data.max_rows=null data.eval_size=100)
SHAPE=(--shape qwen3-1.7b --tokenizer "$TOK")
RECIPE=qwen3-1.7b-medmcqa-lora

if want plan; then
  # memory planner vs torch.cuda.max_memory_allocated, Qwen3-1.7B shape (random weights), LoRA r=16 all-linear
  step python benchmarks/plan_vs_measured.py --device cuda --shape qwen3-1.7b --batches 1,4,8,16 --seq-len 512 \
    --out "$R/plan-vs-measured-$tag.json"
  step python benchmarks/plan_vs_measured.py --device cuda --shape qwen3-1.7b --batches 8,16 --seq-len 512 \
    --grad-ckpt --out "$R/plan-vs-measured-$tag-gradckpt.json"
fi

if want train; then
  need liger_kernel liger-kernel "Liger kernels (training runs without them)" || true
  # our default recipe (bf16 LoRA r=16 all-linear, packing, answer-only loss, <=512 tokens) against the
  # prototype's (fp16, r=8 q/v, batch 4x4, 256 tokens, gradient checkpointing, whole-sequence loss) in the
  # same process, Qwen3-1.7B shape with random weights
  step medtune bench train $RECIPE "${DATA[@]}" "${SHAPE[@]}" --vs hackathon-baseline --steps 30 --warmup 5 \
    --out "$R/bench-train-qwen3-1.7b-vs-hackathon-$tag.json"
  # the largest micro-batch without gradient checkpointing, and torch.compile
  for bs in 16 32 64; do
    step medtune bench train $RECIPE "${DATA[@]}" train.batch_size=$bs train.grad_accum=1 "${SHAPE[@]}" --steps 20 \
      --out "$R/bench-train-qwen3-1.7b-bs$bs-$tag.json"
  done
  step medtune bench train $RECIPE "${DATA[@]}" "${SHAPE[@]}" --compile --steps 30 \
    --out "$R/bench-train-qwen3-1.7b-compile-$tag.json"
  # Liger kernels off (their effect), and FP8 (torchao float8; speed here, accuracy drift needs real weights)
  step medtune bench train $RECIPE "${DATA[@]}" train.liger=false "${SHAPE[@]}" --steps 30 \
    --out "$R/bench-train-qwen3-1.7b-noliger-$tag.json"
  if need torchao torchao "FP8 training"; then
    step medtune bench train $RECIPE "${DATA[@]}" train.fp8=true "${SHAPE[@]}" --steps 30 \
      --out "$R/bench-train-qwen3-1.7b-fp8-$tag.json"
  fi
fi

if want eval; then
  # all 4,183 MedMCQA dev questions, letter scorer, bf16, with and without the prefix cache
  step medtune bench eval $RECIPE --data medmcqa-dev "${SHAPE[@]}" --batch-size 64 \
    --out "$R/bench-eval-qwen3-1.7b-medmcqa-dev-$tag.json"
  # against lm-evaluation-harness's HF backend (same process, model object, questions and prompt)
  if need lm_eval lm-eval "the lm-evaluation-harness comparison"; then
    step python benchmarks/vs_lm_eval.py "$R/vs-lm-eval-qwen3-1.7b-$tag.json" "${SHAPE[@]}" --batch-size 64
  fi
fi

if want api; then
  # answering latency at batch 1, 2, 4 and API throughput on the demo adapter (medtune demo first)
  [ -d runs/demo/adapter ] || step medtune demo
  if need "fastapi, uvicorn, httpx" "fastapi uvicorn httpx" "the API load test"; then
    step python benchmarks/load_api.py runs/demo "$R/load-api-demo-$tag.json" --clients 64 --requests 16
  fi
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "medtune gpu.sh: ${#failed[@]} step(s) failed or skipped:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "medtune gpu.sh: every step ran; figures in $R/*-$tag.json"
