#!/usr/bin/env bash
# Headless Chromium for the test that renders /docs (api/tests/it/openapi.rs),
# from Debian's packages. Idempotent: does nothing when present.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  chromium --version 2>/dev/null || echo "chromium present"
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
