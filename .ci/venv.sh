#!/usr/bin/env bash
# Makes an empty virtualenv at $1 (replacing what is there), installing
# Debian's python3-venv first when the system Python lacks it. Used by the
# scripts that install test tools from PyPI.
set -euo pipefail

venv="$1"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
if ! python3 -m venv "$venv"; then
  # Debian's own python3 makes virtualenvs only with python3-venv installed.
  rm -rf "$venv"
  apt-get update -qq
  apt-get install -y -qq python3-venv
  python3 -m venv "$venv"
fi
