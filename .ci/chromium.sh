#!/usr/bin/env bash
# Headless Chromium for the browser tests (/docs and the web console), from
# Debian's packages, with Devanagari and Tamil fonts so the kiosk's Hindi and
# Tamil screens render (and their screenshots show) real glyphs.
# Idempotent: installs only what is missing.
set -euo pipefail

packages=(chromium chromium-driver fonts-lohit-deva fonts-lohit-taml)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
chromium --version 2>/dev/null || echo "chromium present"
