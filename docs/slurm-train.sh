#!/bin/bash
# medtune on a SLURM cluster: one torchrun per node (srun), each starting one process per GPU.
#   sbatch docs/slurm-train.sh configs/qwen3-1.7b-medmcqa-full.yaml output_dir=/shared/runs/qwen3-full
# The run folder (output_dir) must be on a file system every node sees: the first process writes the
# checkpoints' completion markers and the results, and --resume reads them from every node.
# Resume after a preemption or kill: submit the same line with --resume after the recipe.
#SBATCH --job-name=medtune
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1            # one torchrun per node
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-8}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
# The fabric (docs/multinode.md): uncomment what your cluster needs.
# export NCCL_SOCKET_IFNAME=ib0          # the interface for bootstrap and socket traffic
# export NCCL_IB_HCA=mlx5                # InfiniBand adapters to use (prefix list)
# export NCCL_IB_GID_INDEX=3             # RoCE v2
# export NCCL_DEBUG=INFO                 # while diagnosing only

srun --kill-on-bad-exit=1 bash -c "python -m torch.distributed.run \
  --nnodes $SLURM_NNODES --node-rank \$SLURM_NODEID --nproc-per-node $GPUS_PER_NODE \
  --master-addr $MASTER_ADDR --master-port $MASTER_PORT \
  -m medtune train $*"
