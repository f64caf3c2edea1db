# A throwaway PostgreSQL cluster for tests and benchmarks (sourced, bash).
#
#   pgc_start           initdb + start on a free loopback port; sets PGC_DIR,
#                       PGC_PORT, PGC_DSN (database "postgres", user postgres,
#                       trust authentication, listening on 127.0.0.1 only)
#   pgc_psql DB ARGS..  psql on database DB of the cluster, stopping on error
#   pgc_stop            stop the cluster (immediate) and remove its directory
#
# The cluster lives in its own temporary directory, owned by the postgres
# system user when run as root (initdb refuses to run as root). Debian's
# postgresql package is installed by scripts/deps.sh when missing. Callers
# call pgc_stop from their exit trap.

PGC_DIR=""
PGC_PORT=""
PGC_DSN=""

pgc_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    "$(dirname "${BASH_SOURCE[0]}")/deps.sh" >&2
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  [ -n "$d" ] && [ -x "$d/initdb" ] || { echo "pgcluster: no PostgreSQL server binaries" >&2; return 1; }
  echo "$d"
}

# Run a server binary as the cluster's owner.
_pgc_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_pgc_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pgc_start() {
  local bin
  bin=$(pgc_bindir) || return 1
  PGC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sqlenvfs-pg-XXXXXX")
  chmod 0755 "$PGC_DIR"
  mkdir "$PGC_DIR/data"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres: "$PGC_DIR"
  fi
  _pgc_as_owner "$bin/initdb" -D "$PGC_DIR/data" --auth=trust --username=postgres \
    --encoding=UTF8 --locale=C.UTF-8 >"$PGC_DIR/initdb.log" 2>&1 ||
    { cat "$PGC_DIR/initdb.log" >&2; return 1; }
  local tries
  for tries in 1 2 3; do
    PGC_PORT=$(_pgc_free_port)
    if _pgc_as_owner "$bin/pg_ctl" -D "$PGC_DIR/data" -l "$PGC_DIR/server.log" -w -t 60 \
        -o "-p $PGC_PORT -k $PGC_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null; then
      PGC_DSN="host=127.0.0.1 port=$PGC_PORT user=postgres dbname=postgres"
      return 0
    fi
  done
  cat "$PGC_DIR/server.log" >&2
  return 1
}

pgc_psql() {
  local db=$1; shift
  PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" \
    psql -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$PGC_PORT user=postgres dbname=$db" "$@"
}

pgc_stop() {
  local bin
  [ -n "$PGC_DIR" ] || return 0
  if [ -f "$PGC_DIR/data/postmaster.pid" ]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    _pgc_as_owner "$bin/pg_ctl" -D "$PGC_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PGC_DIR"
  PGC_DIR=""
}
