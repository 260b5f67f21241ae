#!/usr/bin/env bash
# Install what the browser suite (tests/browser, `pytest -m browser`) needs:
# Debian's chromium (the system browser; Playwright never downloads one) and
# Playwright for Python into the active Python environment.
# Idempotent; safe to call from .ci/run. Needs root (or sudo) for apt-get.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # fonts-liberation: readable text in failure screenshots
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi
chromium --version 2>/dev/null  # (its wrapper script may grumble about /dev/shm on stderr)

PY="${PYTHON:-python}"
if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
    "$PY" -m pip install -q playwright
fi
"$PY" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
