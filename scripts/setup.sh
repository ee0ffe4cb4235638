#!/usr/bin/env bash
# Idempotent set-up on a fresh machine. It installs into the active virtual environment if there is one,
# else into the project's own `.venv` (created here), so it works with a distribution's system Python
# that refuses `pip install` outside a venv (PEP 668, Debian 12 / Ubuntu 24.04), under pyenv and in CI.
# torch goes first (so pip does not pull a multi-GB CUDA build on a CPU-only box), then this project,
# and with --test the test extra and Debian's Chromium for the browser tests.
# Run anything in that environment with `scripts/run CMD...` (e.g. `scripts/run mmchat serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=${MMCHAT_TORCH_VERSION:-2.13.0}

say() { echo "setup: $*" >&2; }

if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
else
  BASE=${PYTHON:-python3}
  if ! command -v "$BASE" >/dev/null 2>&1; then
    say "no $BASE found: install Python 3.10 or newer (e.g. apt-get install python3 python3-venv)"
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    say "creating the project environment .venv with $("$BASE" --version 2>&1)"
    if ! "$BASE" -m venv .venv 2>/dev/null; then
      # Debian without python3-venv has no ensurepip: borrow the system pip once to put pip in the venv,
      # then cut the venv off from the system packages.
      rm -rf .venv
      if ! "$BASE" -m venv --without-pip --system-site-packages .venv \
         || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
        rm -rf .venv
        say "cannot create a virtual environment: install python3-venv (apt-get install python3-venv) or python3-pip"
        exit 1
      fi
      .venv/bin/python -m pip install -q --ignore-installed pip
      sed -i 's/^include-system-site-packages = true/include-system-site-packages = false/' .venv/pyvenv.cfg
    fi
  fi
  PY=.venv/bin/python
fi
PIP=("$PY" -m pip install -q)

if ! "$PY" -c "import torch" 2>/dev/null; then
  say "installing torch $TORCH_VERSION"
  if command -v nvidia-smi >/dev/null 2>&1; then
    "${PIP[@]}" "torch==$TORCH_VERSION"
  else
    # CPU machines: the CPU wheel (a local wheel cache or $MMCHAT_TORCH_INDEX, e.g. the PyTorch CPU index).
    "${PIP[@]}" "torch==$TORCH_VERSION" ${MMCHAT_TORCH_INDEX:+--index-url "$MMCHAT_TORCH_INDEX"}
  fi
fi

if [ "${1:-}" = "--test" ]; then
  "${PIP[@]}" -e ".[test]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      say "installing Debian's chromium for the browser tests"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      say "chromium not found; browser tests will be skipped (apt-get install chromium)"
    fi
  fi
else
  "${PIP[@]}" -e .
fi
