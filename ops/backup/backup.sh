#!/usr/bin/env bash
# Dumps the Lockers database to one file (pg_dump's custom format: compressed,
# restorable table by table, in parallel).
#   ops/backup/backup.sh [DATABASE_URL] [FILE]
# DATABASE_URL defaults to the variable of that name; FILE to
# lockers-YYYYmmddTHHMMSSZ.dump in BACKUP_DIR (default: the current folder).
# The dump is consistent (one snapshot) and taken while the system runs; it
# holds every table, the job queue included, so restored jobs run again.
# Keep dumps encrypted and off the database host: they hold contacts.
set -euo pipefail

url="${1:-${DATABASE_URL:?give the database URL as the first argument or in DATABASE_URL}}"
file="${2:-${BACKUP_DIR:-.}/lockers-$(date -u +%Y%m%dT%H%M%SZ).dump}"
tmp="${file}.partial"

pg_dump --format=custom --compress=6 --no-owner --no-privileges --file="$tmp" "$url"
# Only a complete dump gets the final name, so a crash never leaves a short
# file that looks like a backup.
pg_restore --list "$tmp" >/dev/null
mv "$tmp" "$file"
echo "$file"
