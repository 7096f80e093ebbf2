#!/usr/bin/env bash
# Debian's PostgreSQL server for the tests that need a real database (the `postgres_server`
# fixture in tests/conftest.py starts a throw-away one on 127.0.0.1 from these binaries).
# Found as the fixture finds it: SARA_PG_BIN (a bin directory with initdb), `pg_config --bindir`,
# or the newest /usr/lib/postgresql/*/bin. Installs only where it can: as root with apt-get (CI,
# the project's machines). Elsewhere it says what to install; those tests then skip (and fail
# under CI=true).
set -euo pipefail
has_initdb() { [ -n "$1" ] && [ -x "$1/initdb" ]; }
if [ -n "${SARA_PG_BIN:-}" ]; then
  has_initdb "$SARA_PG_BIN" && exit 0
  echo "note: SARA_PG_BIN=$SARA_PG_BIN has no initdb" >&2
fi
if command -v pg_config >/dev/null 2>&1 && has_initdb "$(pg_config --bindir 2>/dev/null || true)"; then
  exit 0
fi
newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if has_initdb "$newest"; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's postgresql for the database tests" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
  echo "note: no PostgreSQL server found; install your distribution's postgresql (or set" \
       "SARA_PG_BIN to its bin directory, the one with initdb) to run the database tests" >&2
fi
