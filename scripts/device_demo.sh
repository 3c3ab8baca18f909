#!/usr/bin/env bash
# The README's "Search for the device you ship to" recipe, on one machine: a Ray head node
# (where the trials train) and a second node with no CPU for trials that advertises the target
# resource srnas-target-edge (where every latency and memory measurement runs, as a Ray task
# of its own), a tiny search measured with ONNX Runtime on that target, then the front, which
# says where and how it was measured. Every command line of the README's recipe block is run
# here exactly as written (tests/test_device_demo.py checks that, runs this script and reads
# the study back: each trial trained on the head and was measured on the edge node).
#
#   scripts/device_demo.sh                      # study in a throwaway SQLite file
#   SRNAS_STORAGE=sqlite:////tmp/edge.db scripts/device_demo.sh
#
# From the environment: TRIALS (default 3), KEEP (1: keep the demo folder).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
DEMO_PREFIX=srnasd  # short: Ray's unix sockets live below the demo folder
# shellcheck source=scripts/demo_common.sh
source "$SCRIPT_DIR/demo_common.sh"

# -- the settings of "Run on a cluster", for one machine --------------------------------------
export SRNAS_STORAGE=${SRNAS_STORAGE:-sqlite:///$DEMO/study.db}
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(32))')
export RAY_AUTH_TOKEN
HEAD_IP=$(python -c 'import ray.util; print(ray.util.get_node_ip_address())')
RAY_PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
STUDY=edge-demo
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
# Tiny trials, one at a time: a few seconds each on a busy laptop CPU.
SEARCH_FLAGS="--space space.yaml --trials ${TRIALS:-3} --concurrency 1 --steps 2 --input 16x16 --scale 2 --scheduler fifo --train-seconds 60"
echo "demo folder $DEMO; head $HEAD_IP:$RAY_PORT"

# -- the README's recipe, line for line --------------------------------------------------------
# on the head (the machine that trains)
ray start --head --port=$RAY_PORT
# on the device you ship to (here: a second Ray node on the same machine)
ray start --address=$HEAD_IP:$RAY_PORT --num-cpus=0 --resources='{"srnas-target-edge": 1}'
# (the demo: wait until Ray's autoscaler reports both nodes; a status right after the start
# may say "No cluster status")
for _ in $(seq 30); do ray status 2>/dev/null | grep -q srnas-target-edge && break; sleep 1; done
# the target's resource is listed
ray status
# the search: trials train on the head, latency and memory are measured on the target
srnas search --address auto --study $STUDY --target edge --runtime onnxruntime $SEARCH_FLAGS
# the front says where and how it was measured
srnas pareto $STUDY
# ---------------------------------------------------------------------------------------------

# Where each node is, for the test to compare with what the trials recorded.
python - <<'EOF'
import json
import logging

import ray

ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
nodes = {("edge" if n["Resources"].get("srnas-target-edge") else "head"): n["NodeID"]
         for n in ray.nodes() if n["Alive"]}
print("nodes: " + json.dumps(nodes))
EOF
