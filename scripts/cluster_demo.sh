#!/usr/bin/env bash
# The README's "Run on a cluster" recipe, on one machine: a Ray head node and a worker node
# (two raylets), each declaring logical GPUs, a search that joins them with --address auto,
# then the queries you would run from another machine. Every command line of the README's
# recipe block is run here exactly as written (tests/test_cluster.py checks that, then runs
# this script against a real PostgreSQL server).
#
#   scripts/cluster_demo.sh                      # study in a throwaway SQLite file
#   SRNAS_STORAGE=postgresql://USER@HOST/DB scripts/cluster_demo.sh
#
# Settings the README leaves to you come from the environment: TRIALS (default 8),
# CONCURRENCY (4), GPUS (logical GPUs per node, 2), KEEP (1: keep the demo folder).
# Without a CUDA device the trials run on the CPU, each still holding the logical GPU Ray
# assigned it (recorded as the trial's gpu_ids).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
DEMO_PREFIX=srnasc
# shellcheck source=scripts/demo_common.sh
source "$SCRIPT_DIR/demo_common.sh"  # the venv on PATH, $DEMO, its Ray only, the cleanup trap

# -- the README's settings block, for one machine --------------------------------------------
export SRNAS_STORAGE=${SRNAS_STORAGE:-sqlite:///$DEMO/study.db}
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(32))')
export RAY_AUTH_TOKEN
HEAD_IP=$(python -c 'import ray.util; print(ray.util.get_node_ip_address())')
RAY_PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
GPUS=${GPUS:-2}
STUDY=cluster-demo
cat > space.yaml <<'EOF'
dim: [16]
split_ratio: [0.25, 0.5]
kernel_size: [5, 7]
n_blocks: 1
conv_layers: {low: 1, high: 2}
window_size: 8
heads: 2
dict_size: {low: 1, high: 3}
batch_size: 4
patch_size: 32
EOF
# Tiny trials: a few seconds each on a laptop CPU.
SEARCH_FLAGS="--space space.yaml --trials ${TRIALS:-8} --concurrency ${CONCURRENCY:-4} --steps 2 --input 16x16 --scale 2 --scheduler fifo --train-seconds 60"
echo "demo folder $DEMO; head $HEAD_IP:$RAY_PORT; $GPUS logical GPUs per node"

# -- the README's recipe, line for line --------------------------------------------------------
# head node
ray start --head --port=$RAY_PORT --num-gpus=$GPUS
# every worker node (here: a second Ray node on the same machine)
ray start --address=$HEAD_IP:$RAY_PORT --num-gpus=$GPUS
# head node: check that Ray sees every node and GPU, then search
ray status
srnas search --address auto --study $STUDY $SEARCH_FLAGS
# any machine with the install and SRNAS_STORAGE set: progress, then the front
srnas studies list
srnas pareto $STUDY
srnas pareto $STUDY --format csv > front.csv
# ---------------------------------------------------------------------------------------------

echo "front.csv: $(($(wc -l < front.csv) - 1)) trials"
