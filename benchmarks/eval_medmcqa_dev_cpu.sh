#!/usr/bin/env bash
# The foundation figure: the embedded SmolLM2-135M-Instruct on all 4,183 MedMCQA dev questions, both
# scorers, on the CPU. Writes benchmarks/results/eval-smollm2-medmcqa-dev-cpu.json.
#   bash benchmarks/eval_medmcqa_dev_cpu.sh [PATH_TO_MEDMCQA_DEV]   (default: the copy shipped with medtune)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-medmcqa-dev}
cmd="medtune eval --data $data --scorer letter cloze --out runs/baseline-medmcqa-dev"
start=$(date +%s.%N)
$cmd
end=$(date +%s.%N)
python benchmarks/summarize_eval.py runs/baseline-medmcqa-dev benchmarks/results/eval-smollm2-medmcqa-dev-cpu.json \
  "$cmd" "$(python -c "print($end - $start)")"
