#!/usr/bin/env bash
# Everything the suite checks on a GPU, in one go (about 3 minutes on one H100/H200):
#
#     bash tests/bench/gpu_run.sh [OUTDIR]      # default reports/out/gpu, or $OUT when set
#
#  1. the machine: GPU, Python, torch and jax with the devices they see;
#  2. tests/bench/gpu_check.py: every built-in adapter on cuda under each precision setting,
#     with its greatest ratio, fingerprint and gradient time, against DESIGN.md's expectations;
#  3. the conformance matrix on cuda under every precision setting, with results, report and
#     JUnit XML (float32 items under TF32-class settings are expected to fail: they are findings);
#  4. a small study on cuda: 2 frameworks x 2 dtypes x 3 settings x 3 batches x 2 widths x 2 seeds.
#
# Each step has its own time limit and the next one runs whatever the last one did. Nothing is
# downloaded: the machine's own torch, jax, pytest, pytest-xdist and Jinja2 are used.
set -u
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-reports/out/gpu}}"
mkdir -p "$out"
export PYTHONDONTWRITEBYTECODE=1  # (the suite itself keeps JAX from preallocating the GPU)
workers="${GPU_WORKERS:-4}"

step() {  # step NAME LIMIT COMMAND...: run with a time limit, log to $out/NAME.txt, time it
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "=== $name: $*"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    rc=$?
    echo "=== $name: exit $rc after $(( $(date +%s) - start )) s"
    echo "$name $rc $(( $(date +%s) - start ))" >>"$out/steps.txt"
}

step env 40 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
  python -V; python -c "import numpy, torch, jax; print(\"numpy\", numpy.__version__);
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"\");
print(\"jax\", jax.__version__, jax.devices())"'
cat "$out/env.txt"

step gpu-check 100 python tests/bench/gpu_check.py
cat "$out/gpu-check.txt"

step conformance 140 python -m pytest tests/test_conformance.py --devices cuda --precisions all \
    --require-frameworks -q -n "$workers" --dist loadgroup -p no:cacheprovider \
    --results "$out/results-cuda.json" --report "$out/report-cuda.html" \
    --junitxml "$out/junit-cuda.xml"
grep -E "^(FAILED|ERROR)" "$out/conformance.txt" | sed -E 's/ - .*//' \
    | sed -E 's/.*\[([a-z_]+-cuda-[a-z0-9.]+)-.*/\1/' | sort | uniq -c
tail -n 3 "$out/conformance.txt"

step study 140 python -m reports.study --frameworks torch,jax --devices cuda \
    --dtypes float32,float64 --precisions default,highest,high --batches 1,32,1024 \
    --sizes 784x16x10,784x256x10 --seeds 2 --timing 5 -n "$workers" -o "$out/study"
tail -n 25 "$out/study.txt"
cat "$out/steps.txt"
