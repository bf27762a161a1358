#!/usr/bin/env bash
# The API description's checkers, from PyPI, in a virtualenv of their own at
# the path the tests look in (api/tests/it/openapi.rs, .ci/schemathesis.sh):
# openapi-spec-validator (is /openapi.json valid OpenAPI 3.1?) and
# schemathesis (does the running intake keep to it?). Idempotent.
set -euo pipefail

venv="$HOME/.cache/lockers/openapi-venv"
validator=0.9.0
schemathesis=4.32.5

if "$venv/bin/python" - <<PY 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(not (version("openapi-spec-validator") == "$validator" and version("schemathesis") == "$schemathesis"))
PY
then
  echo "openapi-spec-validator $validator and schemathesis $schemathesis in $venv"
  exit 0
fi
bash "$(dirname "$0")/venv.sh" "$venv"
"$venv/bin/pip" install --quiet "openapi-spec-validator==$validator" "schemathesis==$schemathesis"
echo "openapi-spec-validator $validator and schemathesis $schemathesis in $venv"
