#!/usr/bin/env bash
# Restores a dump made by backup.sh into an EMPTY database (refuses one that
# has tables: restore into a new database, then point DATABASE_URL at it).
#   ops/backup/restore.sh FILE [DATABASE_URL]
# DATABASE_URL defaults to the variable of that name. The database must exist
# (createdb it first). Stop the workers before pointing them at a restored
# database: jobs that had finished after the dump will run again.
set -euo pipefail

file="${1:?give the dump file as the first argument}"
url="${2:-${DATABASE_URL:?give the database URL as the second argument or in DATABASE_URL}}"

tables=$(psql "$url" -XAtc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ "$tables" != "0" ]; then
  echo "restore.sh: the target database already has $tables tables; restore into an empty one" >&2
  exit 1
fi
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$url" "$file"
psql "$url" -XAc "ANALYZE" >/dev/null
echo "restored $file"
