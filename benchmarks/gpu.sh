#!/usr/bin/env bash
# Every GPU measurement medtune records, in one command (needs a CUDA or ROCm GPU; writes JSON under
# benchmarks/results/). Run from the repository root after installing medtune with a GPU build of torch:
#   bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tag=$(python -c "import torch; n=torch.cuda.get_device_name(0).lower(); print('h100' if 'h100' in n else 'h200' if 'h200' in n else 'mi300x' if 'mi300' in n else n.split()[-1])")
medtune doctor --json > "benchmarks/results/doctor-$tag.json"

# memory planner vs torch.cuda.max_memory_allocated, Qwen3-1.7B shape (random weights), LoRA r=16 all-linear
python benchmarks/plan_vs_measured.py --device cuda --shape qwen3-1.7b --batches 1,4,8,16 --seq-len 512 \
  --out "benchmarks/results/plan-vs-measured-$tag.json"
python benchmarks/plan_vs_measured.py --device cuda --shape qwen3-1.7b --batches 8,16 --seq-len 512 --grad-ckpt \
  --out "benchmarks/results/plan-vs-measured-$tag-gradckpt.json"

# --- speed (issue: benchmarks and training/evaluation close to the hardware's limit) -------------
# Data: the MedMCQA dev file shipped with medtune (the Hub train split needs the network); the
# tokenizer: Qwen2.5's (the same vocabulary as Qwen3's) from ../shared when there, else the Hub's Qwen3.
TOK=${MEDTUNE_BENCH_TOKENIZER:-../shared/models/qwen2.5-tokenizer}
[ -d "$TOK" ] || TOK=Qwen/Qwen3-1.7B
DATA='data.train=[medmcqa-dev] data.eval=[] data.max_rows=null data.eval_size=100'
pip install -q liger-kernel || true

# training: our default recipe (bf16 LoRA r=16 all-linear, packing, answer-only loss, <=512 tokens)
# against the prototype's (fp16, r=8 q/v, batch 4x4, 256 tokens, gradient checkpointing, whole-sequence
# loss) in the same process, Qwen3-1.7B shape with random weights
medtune bench train qwen3-1.7b-medmcqa-lora $DATA --shape qwen3-1.7b --tokenizer "$TOK" \
  --vs hackathon-baseline --steps 30 --warmup 5 --out "benchmarks/results/bench-train-qwen3-1.7b-vs-hackathon-$tag.json"
# the largest micro-batch without gradient checkpointing, and torch.compile
for bs in 16 32 64; do
  medtune bench train qwen3-1.7b-medmcqa-lora $DATA train.batch_size=$bs train.grad_accum=1 --shape qwen3-1.7b \
    --tokenizer "$TOK" --steps 20 --out "benchmarks/results/bench-train-qwen3-1.7b-bs$bs-$tag.json" || true
done
medtune bench train qwen3-1.7b-medmcqa-lora $DATA --shape qwen3-1.7b --tokenizer "$TOK" --compile --steps 30 \
  --out "benchmarks/results/bench-train-qwen3-1.7b-compile-$tag.json" || true

# Liger kernels off (their effect), and FP8 (torchao float8; speed here, accuracy drift needs real weights)
medtune bench train qwen3-1.7b-medmcqa-lora $DATA train.liger=false --shape qwen3-1.7b --tokenizer "$TOK" --steps 30 \
  --out "benchmarks/results/bench-train-qwen3-1.7b-noliger-$tag.json" || true
pip install -q torchao || true
medtune bench train qwen3-1.7b-medmcqa-lora $DATA train.fp8=true --shape qwen3-1.7b --tokenizer "$TOK" --steps 30 \
  --out "benchmarks/results/bench-train-qwen3-1.7b-fp8-$tag.json" || true

# evaluation: all 4,183 MedMCQA dev questions, letter scorer, bf16, with and without the prefix cache
medtune bench eval qwen3-1.7b-medmcqa-lora --data medmcqa-dev --shape qwen3-1.7b --tokenizer "$TOK" \
  --batch-size 64 --out "benchmarks/results/bench-eval-qwen3-1.7b-medmcqa-dev-$tag.json"
# against lm-evaluation-harness's HF backend (same process, model object, questions and prompt)
pip install -q lm-eval
python benchmarks/vs_lm_eval.py "benchmarks/results/vs-lm-eval-qwen3-1.7b-$tag.json" --shape qwen3-1.7b \
  --tokenizer "$TOK" --batch-size 64
# answering latency at batch 1, 2, 4 and API throughput on the demo adapter (medtune demo first)
[ -d runs/demo ] || medtune demo
python benchmarks/load_api.py runs/demo "benchmarks/results/load-api-demo-$tag.json" --clients 64 --requests 16
