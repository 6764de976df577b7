#!/usr/bin/env bash
# node-test-against-server.sh DIR: runs the `npm test` of the Node.js
# package in DIR against a real gatehouse (make sdk-ts-test, make
# example-node-test): builds cmd/server, starts it on 127.0.0.1 with a
# throwaway SQLite store (rotated keys sign at once), waits for /readyz,
# runs `npm ci && npm test` in DIR with GATEHOUSE_URL and
# GATEHOUSE_ADMIN_PASSWORD set, and stops the server whatever happens.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(cd "${1:?usage: node-test-against-server.sh DIR}" && pwd)"
name="$(basename "$dir")"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-node-test.XXXXXX")"
pid=""

cleanup() {
  local status=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$tmp/server.log" ]; then
    echo "--- gatehouse log (last 50 lines) ---" >&2
    tail -n 50 "$tmp/server.log" >&2
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "$name: building cmd/server"
(cd "$root" && "${GO:-go}" build -o "$tmp/gatehouse" ./cmd/server)

admin_password="node-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
GATEHOUSE_ADDR=127.0.0.1:0 \
  GATEHOUSE_DATABASE_URL="sqlite://$tmp/g.db" \
  GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD="$admin_password" \
  GATEHOUSE_ARGON2_MEMORY_KIB=64 \
  GATEHOUSE_ARGON2_ITERATIONS=1 \
  GATEHOUSE_REFRESH_REUSE_WINDOW=0 \
  GATEHOUSE_KEY_PREPUBLISH=0 \
  "$tmp/gatehouse" 2>"$tmp/server.log" &
pid=$!

# The server logs {"msg":"gatehouse listening","addr":"127.0.0.1:PORT"} on stderr.
addr=""
for _ in $(seq 600); do
  addr="$(grep -F '"msg":"gatehouse listening"' "$tmp/server.log" | head -n1 | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 || true)"
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "$name: gatehouse exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "$name: gatehouse did not listen within 60s" >&2; exit 1; }
url="http://$addr"

ready() {
  node -e 'fetch(process.argv[1]).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' "$url/readyz"
}
for _ in $(seq 300); do ready && break; sleep 0.1; done
ready || { echo "$name: $url/readyz not 200 within 30s" >&2; exit 1; }
echo "$name: gatehouse ready at $url"

cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
GATEHOUSE_URL="$url" GATEHOUSE_ADMIN_PASSWORD="$admin_password" npm test
