#!/usr/bin/env bash
# The mail relay tests (api/tests/it/mail_relay.rs) run a real SMTP server,
# aiosmtpd from PyPI, in a virtualenv of their own at the path the tests look
# in (api/tests/it/fakes/aiosmtpd.rs). Idempotent: does nothing when present.
set -euo pipefail

venv="$HOME/.cache/lockers/aiosmtpd-venv"
version=1.4.6

if "$venv/bin/python" -c "import sys, aiosmtpd; sys.exit(aiosmtpd.__version__ != '$version')" 2>/dev/null; then
  echo "aiosmtpd $version in $venv"
  exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
if ! python3 -m venv "$venv"; then
  # Debian's own python3 makes virtualenvs only with python3-venv installed.
  rm -rf "$venv"
  apt-get update -qq
  apt-get install -y -qq python3-venv
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet "aiosmtpd==$version"
"$venv/bin/python" -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__, 'in $venv')"
