#!/usr/bin/env bash
# Prints the `read` lines of crates/vigil-sql/src/functions.txt as the local
# PostgreSQL's catalog gives them, to diff against the file after a server
# upgrade: `scripts/gen-functions.sh | diff - <(grep ' read$' crates/vigil-sql/src/functions.txt)`.
# The volatile functions at the end of the file are reviewed by hand.
set -euo pipefail
psql -X -At -h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}" -d postgres -c "
SELECT DISTINCT proname || ' read' FROM pg_catalog.pg_proc
WHERE pronamespace = 'pg_catalog'::regnamespace
  AND provolatile IN ('i', 's') AND prokind IN ('f', 'a', 'w')
  AND proname NOT IN ('pg_stat_get_activity', 'pg_stat_get_backend_activity', 'ts_stat', 'ts_rewrite')
  AND proname NOT LIKE '%\\_to\\_xml%'
ORDER BY 1"
