#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: torch first (so pip does not pull a multi-GB CUDA build on a
# CPU-only box), then this project, and with --test the test extra and Debian's Chromium for browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=${MMCHAT_TORCH_VERSION:-2.13.0}

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch $TORCH_VERSION" >&2
  if command -v nvidia-smi >/dev/null 2>&1; then
    "$PY" -m pip install -q "torch==$TORCH_VERSION"
  else
    # CPU machines: the CPU wheel (a local wheel cache or $MMCHAT_TORCH_INDEX, e.g. the PyTorch CPU index).
    "$PY" -m pip install -q "torch==$TORCH_VERSION" ${MMCHAT_TORCH_INDEX:+--index-url "$MMCHAT_TORCH_INDEX"}
  fi
fi

if [ "${1:-}" = "--test" ]; then
  "$PY" -m pip install -q -e ".[test]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing Debian's chromium for the browser tests" >&2
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "setup: chromium not found; browser tests will be skipped (apt-get install chromium)" >&2
    fi
  fi
else
  "$PY" -m pip install -q -e .
fi
