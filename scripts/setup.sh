#!/usr/bin/env bash
# Installs everything claimx needs on a fresh machine: the Python packages (editable) and
# the pinned npm toolchain (solc, OpenZeppelin contracts, anvil). System packages for the
# attachment adapter's OCR (tesseract-ocr, tesseract-ocr-chi-sim) join here when it lands.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> Python packages (pip install -e .[dev])"
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"

echo "==> npm toolchain (solc, OpenZeppelin contracts, anvil)"
npm ci --no-audit --no-fund --loglevel=error

echo "==> set-up complete"
