#!/usr/bin/env bash
# A sweep as a SLURM job array: each array task runs one shard of the plan (elsst-bench sweep --shard K/N, with K
# and N taken from SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT). The run directories and
# the leaderboard must be on storage every node sees; submissions take the board's lock.
#
#     mkdir -p logs && sbatch --array=1-4 docs/slurm-sweep.sh results/multilingual/sweep.toml
#
# Each run uses the GPU SLURM gives the task (train's device "auto" picks CUDA when there is one).
# Re-submitting the same array resumes: complete runs are skipped, interrupted ones continue from their checkpoint.
#SBATCH --job-name=elsst-sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=logs/elsst-sweep-%A_%a.out
set -euo pipefail
sweep_file=${1:?usage: sbatch --array=1-N docs/slurm-sweep.sh SWEEP.toml}
cd "${SLURM_SUBMIT_DIR:-.}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/elsst-bench sweep "$sweep_file" --quiet
