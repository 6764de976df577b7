#!/usr/bin/env bash
# scripts/bench.sh: load-test the real gatehouse binary on 127.0.0.1 with
# wrk and print a markdown table (see BENCHMARKS.md for how to read it).
#
# One run builds ./cmd/server, starts it with a fresh SQLite store in a
# temporary directory, the default argon2id parameters (the real
# configuration) and a bootstrap admin, creates users and tokens with
# curl, then measures, each after a short warm-up:
#
#   a. GET /healthz                      the ceiling
#   b. GET /users/me, RS256 bearer token
#   c. POST /token, password grant       200, 503 (hashing limiter) and 429
#                                        (throttle) counted apart; one user
#                                        per connection, right passwords
#   d. POST /token, refresh grant        rotating: each answer's token is used
#                                        next, one login per connection
#   e. argon2id at the same parameters   go test -bench, the reference for c
#   f. a login flood                     1000 connections on POST /token while
#                                        a second wrk measures a and b
#
# with the CPU time the server (and wrk) spent per answer, from
# /proc/PID/stat, and the server's resident memory: idle after start, its
# peak during the flood and over the run (VmHWM). Nothing leaves loopback; the run takes about
# 6 × BENCH_DURATION + 1 minute. Environment (defaults):
#
#   BENCH_DURATION=10         seconds per measurement
#   BENCH_WARMUP=2            seconds of warm-up before each
#   BENCH_THREADS=2           wrk threads
#   BENCH_CONNECTIONS=64      connections of a, b and d
#   BENCH_TOKEN_CONNECTIONS=16  connections (and users) of c: no more than
#                             the hashing queue holds (8 per slot), so c
#                             measures hashing, not refusals
#   BENCH_FLOOD_CONNECTIONS=1000
#   BENCH_KEEP                set: keep the temporary directory (server
#                             log, wrk reports) and say where
#   BENCH_SERVER_ENV          extra VAR=value pairs for the server, e.g.
#                             "GATEHOUSE_TOKEN_CACHE_SIZE=0"
#   GO=go
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
TOKEN_CONNS=${BENCH_TOKEN_CONNECTIONS:-16}
FLOOD_CONNS=${BENCH_FLOOD_CONNECTIONS:-1000}
MONITOR_CONNS=8

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if ! command -v wrk >/dev/null 2>&1; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	log "installing wrk"
	$SUDO apt-get update && $SUDO apt-get install -y wrk
fi
command -v curl >/dev/null 2>&1 || die "curl is required"
# wrk holds FLOOD_CONNS sockets at once. Only the soft limit is raised:
# the server raises its own to the hard limit, as Go does at start.
need_fds=$(( FLOOD_CONNS + 1024 ))
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need_fds" ]; then
	ulimit -Sn "$need_fds" 2>/dev/null || die "wrk needs $need_fds file descriptors; the hard limit is $(ulimit -Hn)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ -n "${BENCH_KEEP:-}" ]; then
		log "kept the server log and wrk reports in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

log "building ./cmd/server and the argon2id benchmark"
"$GO" build -o "$tmp/gatehouse" ./cmd/server
"$GO" test -c -o "$tmp/auth.test" ./internal/auth/

log "starting the server"
admin_password="bench-admin-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
# shellcheck disable=SC2086 # BENCH_SERVER_ENV is a list of VAR=value words
env GATEHOUSE_ADDR=127.0.0.1:0 \
	GATEHOUSE_DATABASE_URL="sqlite://$tmp/gatehouse.db" \
	GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD="$admin_password" \
	${BENCH_SERVER_ENV:-} \
	"$tmp/gatehouse" 2>"$tmp/server.log" &
pid=$!

addr=""
for _ in $(seq 600); do
	addr=$(grep -m1 '"msg":"gatehouse listening"' "$tmp/server.log" 2>/dev/null | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' || true)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; die "the server exited"; }
	sleep 0.1
done
[ -n "$addr" ] || die "the server did not listen within 60 s"
base="http://$addr"
for _ in $(seq 300); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] && break
	sleep 0.1
done
log "server $pid on $base"

# cpu_ticks: the user and system CPU time the server used so far, in clock
# ticks (fields 14 and 15 of /proc/PID/stat, after the command name).
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'; }
TIMEFORMAT='%U %S'
rss_kib() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$pid/status"; }
sleep 1
idle_rss=$(rss_kib VmRSS)

# json_field NAME: the string value of NAME in the JSON on stdin.
json_field() { sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"; }

# login USER PASSWORD SCOPE: the token response, retried while the
# hashing limiter answers 503.
login() {
	local out
	for _ in $(seq 50); do
		out=$(curl -s -w '\n%{http_code}' "$base/token" -d grant_type=password \
			--data-urlencode "username=$1" --data-urlencode "password=$2" ${3:+-d "scope=$3"})
		case "${out##*$'\n'}" in
		200) printf '%s\n' "${out%$'\n'*}"; return 0 ;;
		503) sleep 0.2 ;;
		*) die "login $1: ${out}" ;;
		esac
	done
	die "login $1: the server stayed busy"
}

# One user per login in flight: the throttle counts a login in progress as
# a failure of its username and address until it succeeds.
bench_password="bench-password-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
admin_token=$(login admin "$admin_password" "" | json_field access_token)
bench_users=""
for i in $(seq "$TOKEN_CONNS"); do
	status=$(curl -s -o "$tmp/create.json" -w '%{http_code}' "$base/users" \
		-H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
		-d "{\"username\":\"bench$i\",\"password\":\"$bench_password\",\"scopes\":[\"me\"]}")
	[ "$status" = 201 ] || die "create user bench$i: $status $(cat "$tmp/create.json")"
	bench_users="$bench_users${bench_users:+,}bench$i"
done
access_token=$(login bench1 "$bench_password" me | json_field access_token)
alg=$(printf '%s' "${access_token%%.*}" | tr '_-' '/+' | { b=$(cat); while [ $(( ${#b} % 4 )) -ne 0 ]; do b="$b="; done; printf '%s' "$b"; } | base64 -d 2>/dev/null | json_field alg)
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/users/me" -H "Authorization: Bearer $access_token")" = 200 ] ||
	die "GET /users/me with the new token failed"

# run NAME WRK-ARGS...: warm up, then measure; the RESULT line goes to
# $tmp/NAME.result, wrk's report to $tmp/NAME.out.
run() {
	local name=$1
	shift
	if [ "$WARMUP" != 0 ]; then
		wrk -t"$THREADS" -d"${WARMUP}s" "$@" >/dev/null 2>&1 || true
	fi
	measure "$name" "$@"
}
measure() {
	local name=$1 before after
	shift
	log "measuring $name"
	before=$(cpu_ticks)
	{ time wrk -t"$THREADS" -d"${DURATION}s" --latency "$@" >"$tmp/$name.out" 2>&1; } 2>"$tmp/$name.wrkcpu" ||
		{ cat "$tmp/$name.out" >&2; die "wrk $name failed"; }
	after=$(cpu_ticks)
	grep '^RESULT ' "$tmp/$name.out" | tr -d '\n' >"$tmp/$name.result" || { cat "$tmp/$name.out" >&2; die "wrk $name printed no RESULT"; }
	# CPU seconds the server and wrk spent, for the per-request costs.
	awk -v b="$before" -v a="$after" -v hz="$clk_tck" 'BEGIN { printf " server_cpu_ms=%d", (a - b) * 1000 / hz }' >>"$tmp/$name.result"
	awk '{ printf " wrk_cpu_ms=%d\n", ($1 + $2) * 1000 }' "$tmp/$name.wrkcpu" >>"$tmp/$name.result"
}
# get NAME FIELD: one field of a RESULT line.
get() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" "$tmp/$1.result"; }

export BENCH_THREADS=$THREADS
run healthz -c"$CONNS" -s scripts/wrk/get.lua "$base/healthz"
BENCH_ACCESS_TOKEN=$access_token run me -c"$CONNS" -s scripts/wrk/get.lua "$base/users/me"

log "measuring argon2id at the default parameters (go test -bench, $(nproc) at once)"
argon2_n=200
{ time "$tmp/auth.test" -test.run '^$' -test.bench '^BenchmarkArgon2id$/^default$/^parallel$' \
	-test.benchtime "${argon2_n}x" -test.cpu "$(nproc)" >"$tmp/argon2.out" 2>&1; } 2>"$tmp/argon2.cpu" ||
	{ cat "$tmp/argon2.out" >&2; die "argon2id benchmark failed"; }
# CPU per check: the process ran argon2_n checks, one more to size the
# benchmark and one hash to start from.
argon2_cpu_us=$(awk -v n="$argon2_n" '{ printf "%.0f", ($1 + $2) * 1e6 / (n + 2) }' "$tmp/argon2.cpu")
argon2_ns=$(awk '/^BenchmarkArgon2id/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") print $i }' "$tmp/argon2.out")
[ -n "$argon2_ns" ] || { cat "$tmp/argon2.out" >&2; die "no argon2id result"; }

BENCH_USERNAMES=$bench_users BENCH_PASSWORD=$bench_password \
	run password -c"$TOKEN_CONNS" --timeout 10s -s scripts/wrk/password.lua "$base/token"

# A few more chains than connections: wrk asks a thread's script for a
# request or two more than it sends, and a chain whose token was taken
# but never sent must not leave a connection without one.
chains=$(( CONNS + CONNS / 8 + 4 * THREADS ))
log "logging in $chains times for the refresh chains"
refresh_tokens=""
for i in $(seq "$chains"); do
	user="bench$(( (i - 1) % TOKEN_CONNS + 1 ))"
	refresh_tokens="$refresh_tokens${refresh_tokens:+,}$(login "$user" "$bench_password" me | json_field refresh_token)"
	if [ $(( i % 16 )) = 0 ]; then log "  $i"; fi
done
# No warm-up: each warm-up request would use up a link of the chains.
BENCH_REFRESH_TOKENS=$refresh_tokens measure refresh -c"$CONNS" --timeout 10s -s scripts/wrk/refresh.lua "$base/token"

log "login flood: $FLOOD_CONNS connections on POST /token while measuring /healthz and /users/me"
hwm_before=$(rss_kib VmHWM)
flood_secs=$(( 2 * DURATION + 4 ))
BENCH_USERNAMES=$bench_users BENCH_PASSWORD=$bench_password \
	wrk -t"$THREADS" -c"$FLOOD_CONNS" -d"${flood_secs}s" --timeout 10s --latency -s scripts/wrk/password.lua "$base/token" \
	>"$tmp/flood.out" 2>&1 &
flood_pid=$!
peak_rss=0
(
	while kill -0 "$flood_pid" 2>/dev/null; do
		r=$(rss_kib VmRSS || echo 0)
		[ "${r:-0}" -gt "$peak_rss" ] && peak_rss=$r && echo "$peak_rss" >"$tmp/peak_rss"
		sleep 0.2
	done
) &
sampler_pid=$!
sleep 2
measure flood_healthz -c"$MONITOR_CONNS" --timeout 10s -s scripts/wrk/get.lua "$base/healthz"
BENCH_ACCESS_TOKEN=$access_token measure flood_me -c"$MONITOR_CONNS" --timeout 10s -s scripts/wrk/get.lua "$base/users/me"
wait "$flood_pid" || { cat "$tmp/flood.out" >&2; die "the flood's wrk failed"; }
wait "$sampler_pid" || true
grep '^RESULT ' "$tmp/flood.out" >"$tmp/flood.result" || { cat "$tmp/flood.out" >&2; die "the flood printed no RESULT"; }
flood_rss=$(cat "$tmp/peak_rss" 2>/dev/null || echo 0)
peak_hwm=$(rss_kib VmHWM)
kill -0 "$pid" 2>/dev/null || die "the server died during the run"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ----------------------------------------------------------
# rate NAME FIELD: FIELD answers per second.
rate() { awk -v n="$(get "$1" "$2")" -v d="$(get "$1" duration_us)" 'BEGIN { printf "%.1f", n / (d / 1e6) }'; }
ms() { awk -v u="$(get "$1" "$2")" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
# server_us NAME: server CPU µs per 200 answer.
server_us() { awk -v c="$(get "$1" server_cpu_ms)" -v n="$(get "$1" ok)" 'BEGIN { if (n > 0) printf "%.0f", c * 1000 / n; else print 0 }'; }
# both_us NAME: server and wrk CPU µs per answer: what one answer costs
# the machine, whatever else runs on it.
both_us() { awk -v c="$(get "$1" server_cpu_ms)" -v w="$(get "$1" wrk_cpu_ms)" -v n="$(get "$1" requests)" 'BEGIN { if (n > 0) printf "%.0f", (c + w) * 1000 / n; else print 0 }'; }
statuses() { sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$tmp/$1.result"; }
errs() { echo $(( $(get "$1" connect_errors) + $(get "$1" read_errors) + $(get "$1" write_errors) + $(get "$1" timeouts) )); }
int() { printf '%.0f' "$1"; }

ceiling=$(rate healthz ok)
me_rps=$(rate me ok)
argon2_rate=$(awk -v ns="$argon2_ns" 'BEGIN { printf "%.1f", 1e9 / ns }')
password_ok=$(rate password ok)
refresh_ok=$(rate refresh ok)
flood_ok=$(rate flood ok)

cat <<EOF

### gatehouse load run, $(date -u +%Y-%m-%dT%H:%MZ)

$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $("$GO" env GOVERSION), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' with uncommitted changes');
load average before the run $load_before, after $load_after. wrk -t$THREADS, ${DURATION} s per row after ${WARMUP} s of warm-up;
access tokens $alg; argon2id m=19456 KiB, t=2, p=1 (the defaults); server environment: ${BENCH_SERVER_ENV:-the defaults}.

| row | connections | answered/s | p50 | p99 | server CPU per answer | ratio | ratio by CPU | target |
|---|---|---|---|---|---|---|---|---|
| a. GET /healthz | $CONNS | $(int "$ceiling") | $(ms healthz p50_us) | $(ms healthz p99_us) | $(server_us healthz) µs | ceiling | ceiling | |
| b. GET /users/me, RS256 bearer | $CONNS | $(int "$me_rps") | $(ms me p50_us) | $(ms me p99_us) | $(server_us me) µs | $(pct "$me_rps" "$ceiling") of a | $(pct "$(both_us healthz)" "$(both_us me)") of a | ≥ 60% |
| c. POST /token, password grant | $TOKEN_CONNS | 200: $password_ok, 503: $(rate password busy), 429: $(rate password throttled) | $(ms password p50_us) | $(ms password p99_us) | $(server_us password) µs | $(pct "$password_ok" "$argon2_rate") of e | $(pct "$argon2_cpu_us" "$(server_us password)") of e | ≥ 90% |
| d. POST /token, refresh grant, rotating | $CONNS | $(int "$refresh_ok") | $(ms refresh p50_us) | $(ms refresh p99_us) | $(server_us refresh) µs | | | |
| e. argon2id check, $(nproc) at once | | $argon2_rate | | | $argon2_cpu_us µs | reference for c | reference for c | |
| f. flood: POST /token | $FLOOD_CONNS | 200: $flood_ok, 503: $(rate flood busy), 429: $(rate flood throttled) | $(ms flood p50_us) | $(ms flood p99_us) | | $(pct "$flood_ok" "$argon2_rate") of e | | |
| f. meanwhile GET /healthz | $MONITOR_CONNS | $(int "$(rate flood_healthz ok)") | $(ms flood_healthz p50_us) | $(ms flood_healthz p99_us) | | | | answers |
| f. meanwhile GET /users/me | $MONITOR_CONNS | $(int "$(rate flood_me ok)") | $(ms flood_me p50_us) | $(ms flood_me p99_us) | | | | answers |

| memory | value | target |
|---|---|---|
| RSS idle after start | $(mib "$idle_rss") | < 30 MiB |
| peak RSS during the flood (VmRSS every 0.2 s) | $(mib "$flood_rss") | < 256 MiB |
| peak RSS of the whole run (VmHWM; $(mib "$hwm_before") before the flood) | $(mib "$peak_hwm") | |

"ratio by CPU" divides CPU time per answer (server and wrk for a and b, the server for c, the
benchmark for e), which other load on the machine disturbs far less than answers per second.

Answers by status / socket errors and timeouts:
a $(statuses healthz) / $(errs healthz); b $(statuses me) / $(errs me); c $(statuses password) / $(errs password); d $(statuses refresh) / $(errs refresh);
f $(statuses flood) / $(errs flood); meanwhile /healthz $(statuses flood_healthz) / $(errs flood_healthz), /users/me $(statuses flood_me) / $(errs flood_me).
EOF
if grep -qh '^unexpected answer' "$tmp"/*.out 2>/dev/null; then
	printf '\nUnexpected answers (the first few per wrk thread):\n\n'
	grep -h '^unexpected answer' "$tmp"/*.out | sort | uniq -c | sort -rn | head -10 | sed 's/^/    /'
fi
