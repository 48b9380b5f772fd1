#!/usr/bin/env bash
# Installs everything claimx needs on a fresh Debian machine: Python packages (editable),
# the pinned npm toolchain (solc, OpenZeppelin, anvil) and, where apt-get is usable,
# Tesseract OCR with Simplified Chinese data for the attachment adapter.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> Python packages (pip install -e .[dev])"
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"

echo "==> npm toolchain (solc, OpenZeppelin contracts, anvil)"
npm ci --no-audit --no-fund --loglevel=error

if ! command -v tesseract >/dev/null 2>&1 || ! tesseract --list-langs 2>/dev/null | grep -q chi_sim; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> Tesseract OCR with Simplified Chinese (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      tesseract-ocr tesseract-ocr-chi-sim fonts-wqy-zenhei >/dev/null
  else
    echo "note: tesseract not installed and apt-get unavailable (not root?); OCR tests will" \
         "skip with that reason" >&2
  fi
fi
echo "==> set-up complete"
