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
