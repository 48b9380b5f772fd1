#!/usr/bin/env bash
# Installs everything claimx needs on a fresh machine, saying what each step does and how
# long it took: the Debian packages the attachment adapter uses (Tesseract with Simplified
# Chinese for OCR, a CJK font the tests draw Chinese text with), a project virtual
# environment in .venv with the Python packages (editable), and the pinned npm toolchain
# (solc, OpenZeppelin contracts, anvil; vite, viem, canonicalize, axe-core for the pages);
# Debian's chromium drives the pages' browser tests. A virtual environment because Debian's own python3
# refuses `pip install` outside one (PEP 668). PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
T0=$SECONDS

step() {  # step "what" command...
    local what="$1" start=$SECONDS
    shift
    echo "==> $what"
    "$@"
    echo "    done in $((SECONDS - start)) s"
}

apt_install() {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

APT_PACKAGES="tesseract-ocr tesseract-ocr-chi-sim fonts-wqy-zenhei chromium"
if ! dpkg -s $APT_PACKAGES >/dev/null 2>&1; then
    step "Debian packages ($APT_PACKAGES)" apt_install $APT_PACKAGES
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then
        step "Debian package python3-venv (to create .venv)" apt_install python3-venv
    fi
    step "virtual environment $VENV ($("$PYTHON" --version 2>&1) from $(command -v "$PYTHON"))" \
        "$PYTHON" -m venv "$VENV"
fi

step "Python packages into $VENV (pip install -e .[dev]; about a minute the first time)" \
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"

step "npm toolchain (solc, OpenZeppelin contracts, anvil; vite, viem, canonicalize, axe-core for the pages)" \
    npm ci --no-audit --no-fund --loglevel=error

echo "==> set-up complete in $((SECONDS - T0)) s; commands are in $VENV/bin (claimx, pytest)"
