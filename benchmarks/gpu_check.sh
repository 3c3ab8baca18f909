#!/usr/bin/env bash
# One-shot check of the CUDA paths on a GPU machine with no network, run from the repo root:
#
#     OUT=/some/folder bash benchmarks/gpu_check.sh
#
# Uses the machine's python3 (torch, numpy, scikit-image ... already there) plus the pure-Python
# wheels carried in .whl/ (fvcore, iopath, yacs, termcolor, optuna and its SQL stack), installed
# into $SITE with --no-deps. srnas itself is made importable without pip: it is a namespace
# package, so $SITE/srnas/{space,evaluators,search,studies} are symlinks to this checkout.
#
# Steps (each under its own time limit and a global deadline; a failing step never stops the
# others; exit codes and durations go to $OUT/summary.txt):
#   pytest-gpu     pytest -m gpu tests/test_latency.py tests/test_memory.py     -> pytest.log
#   bench-gpu      benchmarks/bench_gpu.py                                       -> gpu.log, gpu.json
#   bench-blocks   benchmarks/bench_blocks.py --device cuda                      -> blocks.log, blocks.json
#   evaluate       srnas evaluate tiny --device cuda --steps 20 --json           -> evaluate.json, evaluate.err
#   train          srnas train tiny --device cuda --amp (300 steps), then --resume -> train.log, train.json
#   runtime-R-P    srnas benchmark tiny esc-light --runtime R --precision P, for torch fp32/fp16,
#                  onnxruntime fp32/fp16 (its CUDA provider where onnxruntime-gpu is installed)
#                  and tensorrt fp16, on a generated HR-only --val folder   -> runtime-R-P.{json,err}
#   pytest-cpu     the non-gpu tests of test_latency/test_memory/test_evaluate  -> pytest.log (appended)
# 20 files in all under $OUT, plus the val/ folder. Environment knobs: PYTHON (python3), SITE
# (/tmp/site), GPU_CHECK_BUDGET_S (420: the whole script's deadline, installs included), QUICK=1 (pass
# --quick to both benchmarks), SMOKE=1 (CPU, tiny inputs: checks the script without a GPU).
set -u -o pipefail

OUT=${OUT:?OUT must name the output folder}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
QUICK_FLAG=()
[ "${QUICK:-0}" = 1 ] && QUICK_FLAG=(--quick)
# SMOKE=1: the same steps on the CPU with tiny inputs, to check this script without a GPU.
DEV=cuda
GPU_ARGS=() BLOCK_ARGS=() EVAL_ARGS=() RUNTIME_ARGS=()
TRAIN_ARGS=(--amp --steps 300 --batch-size 8 --patch-size 64 --log-every 50 --checkpoint-every 100)
if [ "${SMOKE:-0}" = 1 ]; then
    DEV=cpu
    GPU_ARGS=(--device cpu --input 32x64 --quick --presets tiny esc-light)
    BLOCK_ARGS=(--quick --sizes 32x64)
    EVAL_ARGS=(--steps 2 --batch 2 --patch 32 --input 16x16)
    RUNTIME_ARGS=(--input 64x64)  # reflect padding of the window blocks needs more than 16
    TRAIN_ARGS=(--steps 6 --batch-size 2 --patch-size 32 --log-every 2 --checkpoint-every 2)
fi
TRAIN_RUN=${TRAIN_RUN:-/tmp/gpu-check-train}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export SRNAS_LOCK_DIR=${SRNAS_LOCK_DIR:-/tmp/srnas-locks}
REPO=$(pwd)
SUMMARY=$OUT/summary.txt
START=$(date +%s)
: >"$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_S CMD...: run CMD under min(LIMIT_S, time left before the deadline).
step() {
    local name=$1 limit=$2 left rc began
    shift 2
    left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 15 ]; then
        note "step $name: SKIPPED (only ${left}s left of the ${BUDGET}s budget)"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "=== $name (limit ${limit}s) ==="
    began=$(date +%s)
    timeout -k 5 "$limit" "$@"
    rc=$?
    local what="rc=$rc"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && what="rc=$rc (TIMED OUT after ${limit}s)"
    note "step $name: $what, $(($(date +%s) - began))s"
    return 0
}

# ---- environment ---------------------------------------------------------------------------
note "gpu_check.sh at $(date -u +%FT%TZ) in $REPO, budget ${BUDGET}s"
note "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($(git status --porcelain 2>/dev/null | wc -l) changed files)"
{ nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"; } | head -4 | tee -a "$SUMMARY"

# ---- dependencies: carried wheels, then srnas by symlinks ----------------------------------
mkdir -p "$SITE"
if compgen -G ".whl/*.whl" >/dev/null; then
    pip_target() {
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "$@" >"$OUT/pip.tmp" 2>&1
    }
    if pip_target .whl/*.whl; then
        note "wheels: installed $(ls .whl/*.whl | wc -l) into $SITE"
    else
        # One bad wheel (say, a binary one for another Python) must not keep out the others.
        note "wheels: one pip install failed ($(tail -1 "$OUT/pip.tmp")); one by one:"
        for whl in .whl/*.whl; do
            pip_target "$whl" && note "  ok $whl" || note "  FAILED $whl: $(tail -1 "$OUT/pip.tmp")"
        done
    fi
    rm -f "$OUT/pip.tmp"
else
    note "wheels: none in .whl/ (fvcore-dependent figures will fail)"
fi
mkdir -p "$SITE/srnas"
for pkg in space evaluators search studies; do
    ln -sfn "$REPO/$pkg" "$SITE/srnas/$pkg"
done
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}

"$PY" - <<'EOF' 2>&1 | tee -a "$SUMMARY"
import importlib, platform, sys
print("python", platform.python_version(), sys.executable)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available",
          torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    print("tf32 matmul", torch.backends.cuda.matmul.allow_tf32, "cudnn",
          torch.backends.cudnn.allow_tf32, "cudnn version", torch.backends.cudnn.version())
except Exception as exc:
    print("torch: FAILED", exc)
for name in ("numpy", "skimage", "PIL", "yaml", "tqdm", "portalocker", "fvcore", "iopath",
             "optuna", "sqlalchemy", "srnas.space.network", "srnas.evaluators.evaluate",
             "srnas.search.cli"):
    try:
        mod = importlib.import_module(name)
        print(f"import {name}: ok {getattr(mod, '__version__', '')}")
    except Exception as exc:
        print(f"import {name}: FAILED {type(exc).__name__}: {exc}")
EOF

# ---- checks --------------------------------------------------------------------------------
# The srnas CLI without an installed entry point (srnas is only symlinked into $SITE).
SRNAS="'$PY' -c 'import sys; from srnas.search.cli import main; raise SystemExit(main(sys.argv[1:]))'"
step pytest-gpu 90 bash -o pipefail -c "'$PY' -m pytest -q -m gpu -p no:cacheprovider \
    tests/test_latency.py tests/test_memory.py 2>&1 | tee '$OUT/pytest.log'"

step bench-gpu 120 bash -o pipefail -c "'$PY' benchmarks/bench_gpu.py ${QUICK_FLAG[*]} \
    ${GPU_ARGS[*]} --json '$OUT/gpu.json' 2>&1 | tee '$OUT/gpu.log'"

step bench-blocks 120 bash -o pipefail -c "'$PY' benchmarks/bench_blocks.py --device $DEV \
    ${QUICK_FLAG[*]} ${BLOCK_ARGS[*]} --json '$OUT/blocks.json' 2>&1 | tee '$OUT/blocks.log'"

step evaluate 90 bash -o pipefail -c "$SRNAS evaluate tiny --device $DEV --steps 20 ${EVAL_ARGS[*]} \
    --json >'$OUT/evaluate.json' 2>'$OUT/evaluate.err'; rc=\$?; cat '$OUT/evaluate.json'; \
    tail -20 '$OUT/evaluate.err'; exit \$rc"

# srnas train's CUDA path: bf16 autocast, the shared device lock handed over at logged steps,
# CUDA RNG state in the checkpoint; then --resume of the finished run (reads that checkpoint).
rm -rf "$TRAIN_RUN"
# tee before tail: a timed-out step still leaves its log (tail prints only at end of input).
step train 120 bash -o pipefail -c "{ $SRNAS train tiny --device $DEV ${TRAIN_ARGS[*]} \
    --out '$TRAIN_RUN' && $SRNAS train --out '$TRAIN_RUN' --resume; } 2>&1 \
    | tee '$OUT/train.log' | tail -40; rc=\$?; cp '$TRAIN_RUN/train.json' '$OUT/' 2>/dev/null; \
    exit \$rc"

# This wave's deployment runtimes on the device: each (runtime, precision) pair benchmarks two
# untrained networks (latency and memory are what is checked; PSNR of random weights is not a
# result) on a small HR-only folder made here, as the machine has no benchmark data. A runtime
# that is not installed, or a precision the device refuses, is a one-line error and its rc.
VAL=$OUT/val
"$PY" - "$VAL" <<'EOF' || note "val folder: FAILED"
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

hr = Path(sys.argv[1]) / "HR"
hr.mkdir(parents=True, exist_ok=True)
for name in ("astronaut", "coffee"):
    image = np.asarray(getattr(data, name)())[:192, :192]
    Image.fromarray(image).save(hr / f"{name}.png")
EOF
for pair in torch:fp32 torch:fp16 onnxruntime:fp32 onnxruntime:fp16 tensorrt:fp16; do
    rt=${pair%%:*} prec=${pair##*:}
    step "runtime-$rt-$prec" 90 bash -o pipefail -c "$SRNAS benchmark tiny esc-light --untrained \
        --scale 4 --device $DEV ${RUNTIME_ARGS[*]} --val '$VAL' --runtime $rt --precision $prec \
        --format json >'$OUT/runtime-$rt-$prec.json' 2>'$OUT/runtime-$rt-$prec.err'; rc=\$?; \
        cat '$OUT/runtime-$rt-$prec.json'; tail -5 '$OUT/runtime-$rt-$prec.err'; exit \$rc"
done

step pytest-cpu 120 bash -o pipefail -c "'$PY' -m pytest -q -m 'not gpu' -p no:cacheprovider \
    tests/test_latency.py tests/test_memory.py tests/test_evaluate.py 2>&1 \
    | tee -a '$OUT/pytest.log'"

note "total $(($(date +%s) - START))s"
echo "=== summary ==="
cat "$SUMMARY"
