#!/usr/bin/env bash
# Installs everything claimx needs on a fresh machine: the Python packages (editable) and
# the pinned npm toolchain (solc, OpenZeppelin contracts, anvil), and the Debian packages
# the attachment adapter uses: Tesseract with Simplified Chinese for OCR, and a CJK font
# that the tests draw Chinese text with.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="tesseract-ocr tesseract-ocr-chi-sim fonts-wqy-zenhei"
if ! dpkg -s $APT_PACKAGES >/dev/null 2>&1; then
    echo "==> Debian packages ($APT_PACKAGES)"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
fi

echo "==> Python packages (pip install -e .[dev])"
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"

echo "==> npm toolchain (solc, OpenZeppelin contracts, anvil)"
npm ci --no-audit --no-fund --loglevel=error

echo "==> set-up complete"
