#!/usr/bin/env bash
# axe-core, the accessibility checker the browser tests run in each page
# (api/tests/it/browser.rs), from the npm registry into ~/.cache/lockers-axe.
# Idempotent: does nothing when present.
set -euo pipefail

dir="${HOME}/.cache/lockers-axe"
if [ -f "$dir/node_modules/axe-core/axe.min.js" ]; then
  echo "axe-core present"
  exit 0
fi
mkdir -p "$dir"
npm install --silent --no-audit --no-fund --prefix "$dir" axe-core@4.11.0 >/dev/null
test -f "$dir/node_modules/axe-core/axe.min.js"
echo "axe-core installed"
