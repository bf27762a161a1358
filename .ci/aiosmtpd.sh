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
bash "$(dirname "$0")/venv.sh" "$venv"
"$venv/bin/pip" install --quiet "aiosmtpd==$version"
"$venv/bin/python" -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__, 'in $venv')"
