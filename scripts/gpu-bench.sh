#!/usr/bin/env bash
# The GPU bench on a lent GPU machine (no package registry there; its python3 has torch and transformers 5.17
# but no bitsandbytes or pydantic), in two halves:
#
#   bash scripts/gpu-bench.sh download      # here, with a registry: the missing wheels into .whl/ (~59 MB)
#   bash scripts/gpu-bench.sh [ARGS...]     # there: install .whl/ into .site/, then python -m chat.bench gpu ARGS
#
# Brought: bitsandbytes, pydantic (+ pydantic-core, annotated-types, typing-inspection, typing-extensions) and
# transformers 5.24 (the version this project is developed with; its vision-feature cache needs it) -- installed
# with --no-deps into .site/ and put first on PYTHONPATH. The run stops itself MMCHAT_BENCH_BUDGET seconds (560)
# after it starts: a 600 s command still returns every finished step. The checkpoint goes to /dev/shm when it
# has 17 GB free (else .bench-work/) and is reused by a rerun on the same machine only when complete.
# Results: .bench-out/ (gpu.json after every step, steps/STEP.{json,log,torch.log}); when $OUT is set (the
# device tool), gpu.json, the steps as gpu-steps.tgz and the output as gpu-bench.log are copied there too.
# A rerun of the steps that failed: MMCHAT_BENCH_BUDGET=220 bash scripts/gpu-bench.sh --modes nf4-static
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${MMCHAT_WHEELS:-.whl}

if [ "${1:-}" = "download" ]; then
  mkdir -p "$WHEELS"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" \
    bitsandbytes==0.50.2 transformers==5.24.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 typing-extensions==4.16.0 || exit 1
  du -ch "$WHEELS"/*.whl | tail -1
  exit 0
fi

start=$(date +%s)
budget=${MMCHAT_BENCH_BUDGET:-560}
results=.bench-out
mkdir -p "$results"
log="$results/gpu-bench.log"
: >"$log"
say() { echo "gpu-bench: $*" | tee -a "$log" >&2; }

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site "$WHEELS"/*.whl \
    2>&1 | grep -v "^WARNING: Target directory" | tee -a "$log" >&2
fi
export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
"$PY" -c "import torch, transformers, bitsandbytes, pydantic" 2>>"$log" \
  || say "warning: a package is missing (run 'bash scripts/gpu-bench.sh download' where pip works, carry .whl/)"

work=${MMCHAT_BENCH_WORKDIR:-}
if [ -z "$work" ]; then
  free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')
  if [ "${free_kb:-0}" -ge $((17 * 1024 * 1024)) ]; then work=/dev/shm/mmchat-bench; else work=$PWD/.bench-work; fi
fi
deadline=$((budget - ($(date +%s) - start)))
say "checkpoint in $work; results in $results; deadline ${deadline} s"
"$PY" -m chat.bench gpu --workdir "$work" --out "$results" --deadline "$deadline" "$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}

if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  cp "$results/gpu.json" "$log" "$OUT/" 2>/dev/null
  tar czf "$OUT/gpu-steps.tgz" -C "$results" steps 2>/dev/null
fi
say "done in $(($(date +%s) - start)) s (exit $status)"
exit "$status"
