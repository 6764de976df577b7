#!/usr/bin/env bash
# scripts/bench.sh: load-test the real gatehouse binary on 127.0.0.1 with
# wrk, side by side with a bare chi handler, and print each target of the
# hot-path issue with its ratio and pass/fail (see BENCHMARKS.md).
#
# The method: one core each. With two or more CPUs the servers, the
# baseline and the Go reference benchmarks are pinned to one core
# (taskset), wrk to another; with one CPU everything runs unpinned and the
# output says so. wrk -t1 -c64. Every row runs once per round, the rounds
# one after another (interleaved), BENCH_DURATION seconds each, and the
# table gives the median of the rounds and each round's value:
#
#   base           GET / of tools/benchbase: chi, one JSON handler, nothing
#                  else: the reference of the three rows below
#   healthz        GET /healthz                        ≥ 0.85 × base
#   healthz_shape  GET /healthz of tools/benchbase: gatehouse's headers and
#                  a body of /healthz's size, no work; the ceiling of the
#                  healthz row
#   me             GET /users/me, bearer              ≥ 0.6 × base (stretch 0.8)
#   me_shape       GET /users/me of tools/benchbase, with the same bearer
#                  header: gatehouse's headers and a body of /users/me's
#                  size, no work; the ceiling of the me row
#   introspect_shape  POST /introspect of tools/benchbase: the same for
#                  the introspect row
#   introspect     POST /introspect of a valid access token  ≥ 0.5 × base
#   argon2         one argon2id check at the default parameters and the
#                  server's hashing concurrency (BenchmarkArgon2id)
#   password       POST /token, password grant        ≥ 0.9 × argon2
#   sign           one access token signed as the issuer signs it, RS256
#                  and EdDSA, -cpu 1 (BenchmarkSign)
#   refresh        POST /token, refresh grant, RS256  ≥ 0.8 × RS256 sign
#   refresh_eddsa  the same on a second server with GATEHOUSE_SIGNING_ALG=EdDSA
#                                                      ≥ 5,000/s per core
#   client_eddsa   POST /token, client_credentials grant with HTTP Basic,
#                  on the EdDSA server                 ≥ 5,000/s per core
#
# Refresh rows chain their tokens (scripts/wrk/refresh.lua), from fresh
# logins each round; a chain that breaks (an answer not 200, the server
# counting reuse or grace replays) is reported. Then, once: the store calls
# per login, refresh, bearer and introspection request, sent one at a time
# (gatehouse_store_duration_seconds of /metrics before and after a fixed
# number of requests, with the mean latency per operation; the sync loop's
# calls, learned from an idle window, left out); and a login flood of 1000
# connections on POST /token while a second wrk measures /healthz and then
# /users/me, with the server's RSS sampled every 0.2 s and its store calls
# per flood answer. Idle RSS is read after start.
#
# CPU per answer is the server's user+system time (/proc/PID/stat) over the
# row divided by its 200 answers; other load on the machine moves it far
# less than answers per second. Pass/fail is judged on answers per second,
# as the targets are stated. The script always exits 0 after printing, pass
# or fail: it measures, it does not gate. Nothing leaves loopback; the
# expected duration is printed at start (about 5 minutes by default).
#
# Environment (defaults):
#
#   BENCH_DURATION=3          seconds per row per round
#   BENCH_ROUNDS=5            (five short rounds rather than three long ones: a
#                             median of five survives two disturbed rounds)
#   BENCH_WARMUP=1            seconds of warm-up before each wrk row, round 1 only
#   BENCH_THREADS=1           wrk threads
#   BENCH_CONNECTIONS=64      connections of the GET, introspect and refresh rows
#   BENCH_TOKEN_CONNECTIONS   connections (and users) of the password row:
#                             8 per hashing slot (the queue the server keeps;
#                             its slots are its GOMAXPROCS), so the row
#                             measures hashing, not refusals
#   BENCH_FLOOD_CONNECTIONS=1000
#   BENCH_MONITOR_CONNECTIONS connections of the two wrk runs during the
#                             flood; BENCH_CONNECTIONS, so /users/me compares
#                             with its unloaded row at the same concurrency
#   BENCH_KEEP                set: keep the temporary directory (server
#                             logs, wrk reports) and say where
#   BENCH_SERVER_ENV          extra VAR=value pairs for both servers, e.g.
#                             "GATEHOUSE_TOKEN_CACHE_SIZE=0"
#   GO=go
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DURATION=${BENCH_DURATION:-3}
ROUNDS=${BENCH_ROUNDS:-5}
WARMUP=${BENCH_WARMUP:-1}
THREADS=${BENCH_THREADS:-1}
CONNS=${BENCH_CONNECTIONS:-64}
FLOOD_CONNS=${BENCH_FLOOD_CONNECTIONS:-1000}
MONITOR_CONNS=${BENCH_MONITOR_CONNECTIONS:-$CONNS}
# Requests per kind for the store-call counts.
STORE_LOGINS=20
STORE_REFRESHES=50
STORE_BEARERS=200

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for v in DURATION ROUNDS WARMUP THREADS CONNS FLOOD_CONNS MONITOR_CONNS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_${v/CONNS/CONNECTIONS} must be a whole number, got '${!v}'"
done
[ "$DURATION" -ge 1 ] && [ "$ROUNDS" -ge 1 ] || die "BENCH_DURATION and BENCH_ROUNDS must be at least 1"

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

# ---- cores --------------------------------------------------------------
# allowed_cpus: the CPUs this shell may run on, one per line.
allowed_cpus() {
	local list
	list=$(taskset -pc $$ 2>/dev/null | sed 's/.*: //') || return 0
	tr ',' '\n' <<<"$list" | while IFS=- read -r a b; do [ -n "$a" ] && seq "$a" "${b:-$a}"; done
}
PIN_SERVER=()
PIN_LOAD=()
cpus=()
if command -v taskset >/dev/null 2>&1; then
	mapfile -t cpus < <(allowed_cpus)
fi
if [ "${#cpus[@]}" -ge 2 ]; then
	load_cpu=${cpus[0]}
	server_cpu=${cpus[1]}
	PIN_SERVER=(taskset -c "$server_cpu")
	PIN_LOAD=(taskset -c "$load_cpu")
	pinning="servers, baseline and Go benchmarks pinned to CPU $server_cpu (taskset -c $server_cpu), wrk to CPU $load_cpu"
elif command -v taskset >/dev/null 2>&1; then
	pinning="UNPINNED: this machine offers $(nproc) CPU, so the servers, the baseline and wrk share it"
else
	pinning="UNPINNED: taskset (util-linux) is missing, so the servers, the baseline and wrk share the $(nproc) CPUs"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	if [ -n "${BENCH_KEEP:-}" ]; then
		log "kept the server logs and wrk reports in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
# forget PID: PID was waited for; cleanup must not signal whatever reuses it.
forget() {
	local p kept=()
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
	pids=("${kept[@]}")
}
trap 'exit 130' INT TERM

chains=$(( CONNS + CONNS / 8 + 4 * THREADS ))
# Rough: 10 wrk rows and about 2 rows of Go benchmarks per round, the chain
# logins (about 40 ms each on a busy core), warm-ups, the flood, the build.
expected=$(( ROUNDS * (13 * DURATION + 2 + 2 * chains * 40 / 1000) + 7 * WARMUP + 2 * DURATION + 6 + 30 ))
log "expected duration: about ${expected} s ($(( (expected + 59) / 60 )) min); $pinning"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0

log "building ./cmd/server, ./tools/benchbase and the internal/auth benchmarks"
# The server is built as the Dockerfile builds the image's binary: static
# (CGO_ENABLED=0, so no libc or dynamic loader is mapped: about 1 MiB less
# resident) and -trimpath. The baseline is built the same way.
CGO_ENABLED=0 "$GO" build -trimpath -o "$tmp/gatehouse" ./cmd/server
CGO_ENABLED=0 "$GO" build -trimpath -o "$tmp/benchbase" ./tools/benchbase
"$GO" test -c -o "$tmp/auth.test" ./internal/auth/

# ---- processes ----------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
# cpu_ticks PID: the user and system CPU time PID used so far, in clock
# ticks (fields 14 and 15 of /proc/PID/stat, after the command name).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# rss_kib PID FIELD: VmRSS or VmHWM of PID in KiB.
rss_kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
TIMEFORMAT='%U %S'

admin_password="bench-admin-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
declare -A srv_pid srv_url
# start_server NAME [VAR=value...]: a gatehouse with its own SQLite store,
# pinned like the baseline; sets srv_pid[NAME] and srv_url[NAME].
start_server() {
	local name=$1 addr="" p
	shift
	mkdir -p "$tmp/$name"
	# shellcheck disable=SC2086 # BENCH_SERVER_ENV is a list of VAR=value words
	env GATEHOUSE_ADDR=127.0.0.1:0 \
		GATEHOUSE_DATABASE_URL="sqlite://$tmp/$name/gatehouse.db" \
		GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD="$admin_password" \
		${BENCH_SERVER_ENV:-} "$@" \
		"${PIN_SERVER[@]}" "$tmp/gatehouse" 2>"$tmp/$name/server.log" &
	p=$!
	pids+=("$p")
	for _ in $(seq 600); do
		addr=$(grep -m1 '"msg":"gatehouse listening"' "$tmp/$name/server.log" 2>/dev/null | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' || true)
		[ -n "$addr" ] && break
		kill -0 "$p" 2>/dev/null || { cat "$tmp/$name/server.log" >&2; die "the $name server exited"; }
		sleep 0.1
	done
	[ -n "$addr" ] || die "the $name server did not listen within 60 s"
	for _ in $(seq 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz")" = 200 ] && break
		sleep 0.1
	done
	srv_pid[$name]=$p
	srv_url[$name]="http://$addr"
	log "$name server $p on http://$addr"
}

log "starting the servers and the baseline"
start_server rs
sleep 1
idle_rss=$(rss_kib "${srv_pid[rs]}" VmRSS)
start_server ed GATEHOUSE_SIGNING_ALG=EdDSA

"${PIN_SERVER[@]}" "$tmp/benchbase" -port 0 >"$tmp/benchbase.out" 2>&1 &
base_pid=$!
pids+=("$base_pid")
base_url=""
for _ in $(seq 100); do
	base_url=$(sed -n 's/^listening \(.*\)/http:\/\/\1/p' "$tmp/benchbase.out")
	[ -n "$base_url" ] && break
	kill -0 "$base_pid" 2>/dev/null || { cat "$tmp/benchbase.out" >&2; die "benchbase exited"; }
	sleep 0.1
done
[ -n "$base_url" ] || die "benchbase did not listen within 10 s"
[ "$(curl -s "$base_url/")" = '{"status":"ok"}' ] || die "benchbase does not answer {\"status\":\"ok\"}"
log "baseline $base_pid on $base_url"

# metric URL PREFIX: the sum of the samples of /metrics whose line starts
# with PREFIX (the metric's name and labels, as the server prints them).
metric() { curl -s "$1/metrics" | P="$2" awk 'index($0, ENVIRON["P"]) == 1 { s += $NF } END { printf "%d\n", s }'; }
# The hashing slots are the server's GOMAXPROCS, which its pinning sets.
slots=$(metric "${srv_url[rs]}" 'go_sched_gomaxprocs_threads ')
if [ "${slots:-0}" -lt 1 ]; then
	slots=$(nproc)
	[ "${#PIN_SERVER[@]}" = 0 ] || slots=1
fi
TOKEN_CONNS=${BENCH_TOKEN_CONNECTIONS:-$(( 8 * slots ))}

# ---- accounts and tokens ------------------------------------------------
# json_field NAME: the string value of NAME in the JSON on stdin.
json_field() { sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"; }

# login URL USER PASSWORD SCOPE: the token response, retried while the
# hashing limiter answers 503 or the throttle 429 (a login of a row that
# wrk cut off counts as a failure until one succeeds).
login() {
	local out wait
	for _ in $(seq 100); do
		out=$(curl -s -D "$tmp/login.headers" -w '\n%{http_code}' "$1/token" -d grant_type=password \
			--data-urlencode "username=$2" --data-urlencode "password=$3" ${4:+-d "scope=$4"})
		case "${out##*$'\n'}" in
		200) printf '%s\n' "${out%$'\n'*}"; return 0 ;;
		503) sleep 0.2 ;;
		429)
			wait=$(sed -n 's/^[Rr]etry-[Aa]fter:[[:space:]]*\([0-9]*\).*/\1/p' "$tmp/login.headers")
			sleep "$(( ${wait:-1} > 5 ? 5 : ${wait:-1} ))"
			;;
		*) die "login $2: ${out}" ;;
		esac
	done
	die "login $2: the server stayed busy"
}

# create_user URL ADMIN-TOKEN NAME SCOPES-JSON
create_user() {
	local status
	status=$(curl -s -o "$tmp/create.json" -w '%{http_code}' "$1/users" \
		-H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
		-d "{\"username\":\"$3\",\"password\":\"$bench_password\",\"scopes\":$4}")
	[ "$status" = 201 ] || die "create user $3: $status $(cat "$tmp/create.json")"
}

# One user per login in flight: the throttle counts a login in progress as
# a failure of its username and address until it succeeds.
bench_password="bench-password-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
bench_users=""
for s in rs ed; do
	admin_token=$(login "${srv_url[$s]}" admin "$admin_password" "" | json_field access_token)
	for i in $(seq "$TOKEN_CONNS"); do
		create_user "${srv_url[$s]}" "$admin_token" "bench$i" '["me"]'
		[ "$s" = ed ] || bench_users="$bench_users${bench_users:+,}bench$i"
	done
	[ "$s" = ed ] || create_user "${srv_url[$s]}" "$admin_token" introspector '["tokens:introspect"]'
done
access_token=$(login "${srv_url[rs]}" bench1 "$bench_password" me | json_field access_token)
introspector_token=$(login "${srv_url[rs]}" introspector "$bench_password" tokens:introspect | json_field access_token)
# jwt_alg TOKEN: the alg of a JWS header.
jwt_alg() { printf '%s' "${1%%.*}" | tr '_-' '/+' | { b=$(cat); while [ $(( ${#b} % 4 )) -ne 0 ]; do b="$b="; done; printf '%s' "$b"; } | base64 -d 2>/dev/null | json_field alg; }
alg=$(jwt_alg "$access_token")
[ "$(curl -s -o /dev/null -w '%{http_code}' "${srv_url[rs]}/users/me" -H "Authorization: Bearer $access_token")" = 200 ] ||
	die "GET /users/me with the new token failed"
curl -s "${srv_url[rs]}/introspect" -H "Authorization: Bearer $introspector_token" -d "token=$access_token" | grep -q '"active":true' ||
	die "POST /introspect of the new token is not active"
ed_alg=$(jwt_alg "$(login "${srv_url[ed]}" bench1 "$bench_password" me | json_field access_token)")
[ "$ed_alg" = EdDSA ] || die "the EdDSA server signs $ed_alg"
# A service on the EdDSA server, allowed the client-credentials grant.
ed_admin=$(login "${srv_url[ed]}" admin "$admin_password" "" | json_field access_token)
status=$(curl -s -o "$tmp/client.json" -w '%{http_code}' "${srv_url[ed]}/clients" -H "Authorization: Bearer $ed_admin" \
	-H 'Content-Type: application/json' -d '{"client_id":"bench-service","service_scopes":["tokens:introspect"],"grants":["client_credentials"]}')
[ "$status" = 201 ] || die "register the bench service: $status $(cat "$tmp/client.json")"
client_basic=$(printf 'bench-service:%s' "$(json_field client_secret <"$tmp/client.json")" | base64 -w0)
curl -s "${srv_url[ed]}/token" -H "Authorization: Basic $client_basic" -d grant_type=client_credentials | grep -q '"access_token"' ||
	die "the client_credentials grant of the bench service failed"

# ---- one row ------------------------------------------------------------
# Every row leaves $tmp/ROW.ROUND.row: "answers-per-second cpu-µs-per-answer".

# measure ROW ROUND PID WRK-ARGS...: one wrk run, CPU time of process PID.
measure() {
	local row=$1 round=$2 target=$3 out before after
	shift 3
	out="$tmp/$row.$round"
	before=$(cpu_ticks "$target")
	{ time "${PIN_LOAD[@]}" wrk -t"$THREADS" -d"${DURATION}s" --latency "$@" >"$out.out" 2>&1; } 2>"$out.wrkcpu" ||
		{ cat "$out.out" >&2; die "wrk $row failed"; }
	after=$(cpu_ticks "$target")
	grep '^RESULT ' "$out.out" | tr -d '\n' >"$out.result" || { cat "$out.out" >&2; die "wrk $row printed no RESULT"; }
	awk -v b="$before" -v a="$after" -v hz="$clk_tck" 'BEGIN { printf " server_cpu_us=%d", (a - b) * 1e6 / hz }' >>"$out.result"
	awk '{ printf " wrk_cpu_us=%d\n", ($1 + $2) * 1e6 }' "$out.wrkcpu" >>"$out.result"
	awk '{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		rate = v["duration_us"] > 0 ? v["ok"] / (v["duration_us"] / 1e6) : 0
		cpu = v["ok"] > 0 ? v["server_cpu_us"] / v["ok"] : 0
		printf "%.2f %.2f\n", rate, cpu
	}' "$out.result" >"$out.row"
}
# get ROW.ROUND FIELD: one field of a RESULT line.
get() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" "$tmp/$1.result"; }

# wrk_row ROW ROUND PID WRK-ARGS...: measure, after a warm-up in round 1.
wrk_row() {
	if [ "$2" = 1 ] && [ "$WARMUP" != 0 ]; then
		"${PIN_LOAD[@]}" wrk -t"$THREADS" -d"${WARMUP}s" "${@:4}" >/dev/null 2>&1 || true
	fi
	measure "$@"
}

# The argon2id reference: a fixed number of checks (about a row's length
# on an idle core), so the process's CPU time gives CPU per check: it ran
# argon2_n checks, one more to size the benchmark and one hash to start
# from.
argon2_n=$(( DURATION * 40 / slots * slots ))
[ "$argon2_n" -ge "$slots" ] || argon2_n=$slots
argon2_row() {
	local out="$tmp/argon2.$1" ns
	{ time "${PIN_SERVER[@]}" "$tmp/auth.test" -test.run '^$' -test.bench '^BenchmarkArgon2id$/^default$/^parallel$' \
		-test.benchtime "${argon2_n}x" -test.cpu "$slots" >"$out.out" 2>&1; } 2>"$out.cpu" ||
		{ cat "$out.out" >&2; die "argon2id benchmark failed"; }
	ns=$(awk '/^BenchmarkArgon2id/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") print $i }' "$out.out")
	[ -n "$ns" ] || { cat "$out.out" >&2; die "no argon2id result"; }
	awk -v ns="$ns" -v n="$argon2_n" '{ printf "%.2f %.2f\n", 1e9 / ns, ($1 + $2) * 1e6 / (n + 2) }' "$out.cpu" >"$out.row"
}

# The signing reference, per core: -cpu 1 on the server's core; CPU per
# signature is ns/op, the benchmark being alone on its one thread.
sign_time=$(awk -v d="$DURATION" 'BEGIN { printf "%.1fs", d / 2 }')
sign_row() {
	local out="$tmp/sign.$1" a ns
	"${PIN_SERVER[@]}" "$tmp/auth.test" -test.run '^$' -test.bench '^BenchmarkSign$' \
		-test.benchtime "$sign_time" -test.cpu 1 >"$out.out" 2>&1 ||
		{ cat "$out.out" >&2; die "signing benchmark failed"; }
	for a in RS256 EdDSA; do
		ns=$(awk -v b="BenchmarkSign/$a" '$1 == b { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") print $i }' "$out.out")
		[ -n "$ns" ] || { cat "$out.out" >&2; die "no BenchmarkSign/$a result"; }
		awk -v ns="$ns" 'BEGIN { printf "%.2f %.2f\n", 1e9 / ns, ns / 1000 }' >"$tmp/sign_$a.$1.row"
	done
}

# refresh_row ROW ROUND SERVER: fresh chains from as many logins (a
# chain's tokens are used up by the round that ran it), then the refresh
# grant with no warm-up (each warm-up request would use a link). The
# server's refresh outcomes around the row tell a broken chain (reuse,
# grace replays, failures) from a slow one.
refresh_row() {
	local row=$1 round=$2 s=$3 tokens="" i url=${srv_url[$3]} o
	log "  $row: logging in $chains times for the refresh chains"
	for i in $(seq "$chains"); do
		tokens="$tokens${tokens:+,}$(login "$url" "bench$(( (i - 1) % TOKEN_CONNS + 1 ))" "$bench_password" me | json_field refresh_token)"
	done
	for o in rotated grace_replay reuse_detected failed stale; do
		printf '%s %s\n' "$o" "$(metric "$url" "gatehouse_token_requests_total{grant_type=\"refresh_token\",outcome=\"$o\"} ")"
	done >"$tmp/$row.$round.outcomes_before"
	BENCH_REFRESH_TOKENS=$tokens measure "$row" "$round" "${srv_pid[$s]}" -c"$CONNS" --timeout 10s -s scripts/wrk/refresh.lua "$url/token"
	for o in rotated grace_replay reuse_detected failed stale; do
		printf '%s %s\n' "$o" "$(metric "$url" "gatehouse_token_requests_total{grant_type=\"refresh_token\",outcome=\"$o\"} ")"
	done >"$tmp/$row.$round.outcomes_after"
}

run_row() {
	local rs_url=${srv_url[rs]} rs_pid=${srv_pid[rs]}
	log "  $1"
	case $1 in
	base) wrk_row base "$2" "$base_pid" -c"$CONNS" -s scripts/wrk/get.lua "$base_url/" ;;
	healthz) wrk_row healthz "$2" "$rs_pid" -c"$CONNS" -s scripts/wrk/get.lua "$rs_url/healthz" ;;
	me) BENCH_ACCESS_TOKEN=$access_token wrk_row me "$2" "$rs_pid" -c"$CONNS" -s scripts/wrk/get.lua "$rs_url/users/me" ;;
	healthz_shape) wrk_row healthz_shape "$2" "$base_pid" -c"$CONNS" -s scripts/wrk/get.lua "$base_url/healthz" ;;
	me_shape) BENCH_ACCESS_TOKEN=$access_token wrk_row me_shape "$2" "$base_pid" -c"$CONNS" -s scripts/wrk/get.lua "$base_url/users/me" ;;
	introspect)
		BENCH_ACCESS_TOKEN=$introspector_token BENCH_INTROSPECT_TOKEN=$access_token \
			wrk_row introspect "$2" "$rs_pid" -c"$CONNS" -s scripts/wrk/introspect.lua "$rs_url/introspect"
		;;
	introspect_shape)
		BENCH_ACCESS_TOKEN=$introspector_token BENCH_INTROSPECT_TOKEN=$access_token \
			wrk_row introspect_shape "$2" "$base_pid" -c"$CONNS" -s scripts/wrk/introspect.lua "$base_url/introspect"
		;;
	argon2) argon2_row "$2" ;;
	password)
		BENCH_USERNAMES=$bench_users BENCH_PASSWORD=$bench_password \
			wrk_row password "$2" "$rs_pid" -c"$TOKEN_CONNS" --timeout 10s -s scripts/wrk/password.lua "$rs_url/token"
		;;
	sign) sign_row "$2" ;;
	refresh) refresh_row refresh "$2" rs ;;
	refresh_eddsa) refresh_row refresh_eddsa "$2" ed ;;
	client_eddsa)
		BENCH_CLIENT_BASIC=$client_basic wrk_row client_eddsa "$2" "${srv_pid[ed]}" -c"$CONNS" -s scripts/wrk/client_credentials.lua "${srv_url[ed]}/token"
		;;
	esac
}

export BENCH_THREADS=$THREADS
rows=(base healthz healthz_shape me me_shape introspect introspect_shape argon2 password sign refresh refresh_eddsa client_eddsa)
for r in $(seq "$ROUNDS"); do
	log "round $r of $ROUNDS: ${rows[*]}, ${DURATION} s each"
	for row in "${rows[@]}"; do
		run_row "$row" "$r"
	done
done

# ---- store calls per request --------------------------------------------
# store_counts URL: "op calls seconds" per store operation, summed over
# results, from the store instrumentation's histogram.
store_counts() {
	curl -s "$1/metrics" |
		sed -n 's/^gatehouse_store_duration_seconds_\(count\|sum\){op="\([^"]*\)",result="[^"]*"} \(.*\)$/\2 \1 \3/p' |
		awk '$2 == "count" { c[$1] += $3 } $2 == "sum" { t[$1] += $3 } END { for (k in c) printf "%s %d %.6f\n", k, c[k], t[k] }' | sort
}
# store_delta BEFORE AFTER: "op calls seconds" for the ops that moved,
# the sync loop's (store.background) left out once it is known.
store_delta() {
	awk 'FILENAME == ARGV[1] { bg[$1] = 1; next } FILENAME == ARGV[2] { b[$1] = $2; bt[$1] = $3; next }
		!($1 in bg) && $2 - b[$1] > 0 { printf "%s %d %.6f\n", $1, $2 - b[$1], $3 - bt[$1] }' \
		"$tmp/store.background" "$1" "$2"
}
# store_per KIND N: "calls-per-request" and "op calls-per-request (mean
# latency), ..." of a window.
store_per() {
	awk -v n="$2" '{ s += $2 } END { printf "%.2f\n", (n > 0 ? s / n : 0) }' "$tmp/store.$1.delta"
	awk -v n="$2" '{ printf "%s%s %.2f (%.2f ms)", sep, $1, $2 / n, 1000 * $3 / $2; sep = ", " } END { print "" }' "$tmp/store.$1.delta"
}

log "counting store calls per request"
rs_url=${srv_url[rs]}
# The sync loop's own calls (the change log, the keys: every second) are
# learned from an idle window and left out of the counts below.
: >"$tmp/store.background"
store_counts "$rs_url" >"$tmp/store.idle0"
sleep 3
store_counts "$rs_url" >"$tmp/store.idle1"
store_delta "$tmp/store.idle0" "$tmp/store.idle1" | awk '{ print $1 }' >"$tmp/store.background.new"
mv "$tmp/store.background.new" "$tmp/store.background"

# store_window KIND N COMMAND...: the store calls COMMAND makes, per request.
store_window() {
	local kind=$1 n=$2
	shift 2
	store_counts "$rs_url" >"$tmp/store.$kind.0"
	"$@"
	store_counts "$rs_url" >"$tmp/store.$kind.1"
	store_delta "$tmp/store.$kind.0" "$tmp/store.$kind.1" >"$tmp/store.$kind.delta"
	echo "$n" >"$tmp/store.$kind.n"
}
store_logins() {
	local i
	for i in $(seq "$STORE_LOGINS"); do
		login "$rs_url" "bench$(( (i - 1) % TOKEN_CONNS + 1 ))" "$bench_password" me >/dev/null
	done
}
store_refresh_token=$(login "$rs_url" bench1 "$bench_password" me | json_field refresh_token)
store_refreshes() {
	local i out tok=$store_refresh_token
	for i in $(seq "$STORE_REFRESHES"); do
		out=$(curl -s "$rs_url/token" -d grant_type=refresh_token -d "refresh_token=$tok")
		tok=$(printf '%s' "$out" | json_field refresh_token)
		[ -n "$tok" ] || die "store-call count: refresh $i failed: $out"
	done
}
# curl_repeat N ARGS... URL: N requests on one connection, all answered 200.
curl_repeat() {
	local n=$1 url=${*: -1} bad urls=()
	for _ in $(seq "$n"); do urls+=(-o /dev/null "$url"); done
	bad=$(curl -s -w '%{http_code}\n' "${@:2:$#-2}" "${urls[@]}" | grep -vc '^200$' || true)
	[ "$bad" = 0 ] || die "store-call count: $bad of $n requests to $url were not answered 200"
}
curl -s -o /dev/null -H "Authorization: Bearer $access_token" "$rs_url/users/me" # the user view holds bench1 from here on
store_window login "$STORE_LOGINS" store_logins
store_window refresh "$STORE_REFRESHES" store_refreshes
store_window bearer "$STORE_BEARERS" curl_repeat "$STORE_BEARERS" -H "Authorization: Bearer $access_token" "$rs_url/users/me"
store_window introspect "$STORE_BEARERS" curl_repeat "$STORE_BEARERS" -H "Authorization: Bearer $introspector_token" -d "token=$access_token" "$rs_url/introspect"

# ---- the login flood ----------------------------------------------------
log "login flood: $FLOOD_CONNS connections on POST /token while measuring /healthz and /users/me"
rs_pid=${srv_pid[rs]}
hwm_before=$(rss_kib "$rs_pid" VmHWM)
store_counts "$rs_url" >"$tmp/store.flood.0"
# At least 14 s, so that a login left waiting 10 s (wrk's timeout) shows.
flood_secs=$(( 2 * DURATION + 4 ))
[ "$flood_secs" -ge 14 ] || flood_secs=14
BENCH_USERNAMES=$bench_users BENCH_PASSWORD=$bench_password \
	"${PIN_LOAD[@]}" wrk -t"$THREADS" -c"$FLOOD_CONNS" -d"${flood_secs}s" --timeout 10s --latency -s scripts/wrk/password.lua "$rs_url/token" \
	>"$tmp/flood.1.out" 2>&1 &
flood_pid=$!
pids+=("$flood_pid")
(
	peak=0
	while kill -0 "$flood_pid" 2>/dev/null; do
		r=$(rss_kib "$rs_pid" VmRSS || echo 0)
		[ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$tmp/peak_rss"
		sleep 0.2
	done
) &
sampler_pid=$!
pids+=("$sampler_pid")
sleep 2
measure flood_healthz 1 "$rs_pid" -c"$MONITOR_CONNS" --timeout 10s -s scripts/wrk/get.lua "$rs_url/healthz"
BENCH_ACCESS_TOKEN=$access_token measure flood_me 1 "$rs_pid" -c"$MONITOR_CONNS" --timeout 10s -s scripts/wrk/get.lua "$rs_url/users/me"
wait "$flood_pid" || { forget "$flood_pid"; cat "$tmp/flood.1.out" >&2; die "the flood's wrk failed"; }
forget "$flood_pid"
wait "$sampler_pid" || true
forget "$sampler_pid"
store_counts "$rs_url" >"$tmp/store.flood.1"
store_delta "$tmp/store.flood.0" "$tmp/store.flood.1" >"$tmp/store.flood.delta"
grep '^RESULT ' "$tmp/flood.1.out" | tr -d '\n' >"$tmp/flood.1.result" || { cat "$tmp/flood.1.out" >&2; die "the flood printed no RESULT"; }
flood_rss=$(cat "$tmp/peak_rss" 2>/dev/null || echo 0)
peak_hwm=$(rss_kib "$rs_pid" VmHWM)
for s in rs ed; do
	kill -0 "${srv_pid[$s]}" 2>/dev/null || die "the $s server died during the run"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ---------------------------------------------------------
# col ROW N: column N (1 rate, 2 CPU) of every round of ROW, one a line.
col() { local r; for r in $(seq "$ROUNDS"); do awk -v c="$2" '{ print $c }' "$tmp/$1.$r.row"; done; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { col "$1" "$2" | median; }
fmt_rate() { awk -v x="$1" 'BEGIN { if (x < 100) printf "%.1f", x; else printf "%.0f", x }'; }
rounds_of() { col "$1" 1 | while read -r x; do fmt_rate "$x"; printf ' '; done | sed 's/ $//; s/ / \/ /g'; }
fmt_cpu() { awk -v x="$1" 'BEGIN { if (x <= 0) print "n/a"; else if (x < 10) printf "%.1f µs", x; else printf "%.0f µs", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
verdict() { if at_least "$1" "$2"; then echo "**pass**"; else echo "**fail**"; fi; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.1f ms", u / 1000 }'; }
sum_field() { local r t=0; for r in $(seq "$ROUNDS"); do t=$(( t + $(get "$1.$r" "$2") )); done; echo "$t"; }
errs() { echo $(( $(get "$1" connect_errors) + $(get "$1" read_errors) + $(get "$1" write_errors) + $(get "$1" timeouts) )); }
# statuses ROW: every round's answers by status, summed.
statuses() {
	local r
	for r in $(seq "$ROUNDS"); do sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$tmp/$1.$r.result" | tr ',' '\n'; done |
		awk -F: '$1 != "" { s[$1] += $2 } END { for (k in s) printf "%s:%d\n", k, s[k] }' | sort | paste -sd, -
}
round_errs() { local r t=0; for r in $(seq "$ROUNDS"); do t=$(( t + $(errs "$1.$r") )); done; echo "$t"; }
# outcomes ROW: the server's refresh outcomes during ROW, summed over rounds.
outcomes() {
	local r
	for r in $(seq "$ROUNDS"); do
		awk 'NR == FNR { b[$1] = $2; next } { print $1, $2 - b[$1] }' "$tmp/$1.$r.outcomes_before" "$tmp/$1.$r.outcomes_after"
	done | awk '{ s[$1] += $2 } END { for (k in s) printf "%s %d\n", k, s[k] }' | sort
}
outcome() { outcomes "$1" | awk -v k="$2" '$1 == k { print $2 }'; }

# line LABEL ROW REF TARGET-TEXT MIN-RATIO: one table row; REF "" for a
# reference, MIN-RATIO "" for no target, a MIN-RATIO starting with "/s:"
# for an absolute rate.
line() {
	local label=$1 row=$2 ref=$3 target=$4 min=$5 m c rr rc result=""
	m=$(med "$row" 1)
	c=$(med "$row" 2)
	if [ -z "$ref" ]; then
		rr="reference"
		rc=""
	else
		rr="$(ratio "$m" "$(med "$ref" 1)") of $ref"
		rc="$(awk -v a="$(med "$ref" 2)" -v b="$c" 'BEGIN { if (a > 0 && b > 0) printf "%.2f×", a / b; else print "" }')"
	fi
	case $min in
	"") ;;
	/s:*) result=$(verdict "$m" "${min#/s:}") ;;
	*) result=$(verdict "$(awk -v a="$m" -v b="$(med "$ref" 1)" 'BEGIN { print (b > 0 ? a / b : 0) }')" "$min") ;;
	esac
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(fmt_rate "$m")" "$(rounds_of "$row")" "$(fmt_cpu "$c")" "$rr" "$rc" "$target" "$result"
}

me_ratio=$(awk -v a="$(med me 1)" -v b="$(med base 1)" 'BEGIN { print (b > 0 ? a / b : 0) }')
stretch="stretch 0.8×: $(if at_least "$me_ratio" 0.8; then echo met; else echo "not met"; fi)"
git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' with uncommitted changes')"

cat <<EOF

### gatehouse load run, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) CPUs (\`$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)\`), $("$GO" env GOVERSION), commit $git_rev.
Load average before the run $load_before, after $load_after; the run took ${SECONDS} s (expected about ${expected} s).
Method: $pinning; server and baseline built static (CGO_ENABLED=0 -trimpath, as the Dockerfile builds); server GOMAXPROCS $slots; wrk -t$THREADS -c$CONNS
(password grant -c$TOKEN_CONNS: 8 per hashing slot); $ROUNDS interleaved rounds of ${DURATION} s per row, medians;
access tokens $alg (the refresh_eddsa server: $ed_alg); argon2id m=19456 KiB, t=2, p=1 (the defaults);
server environment: ${BENCH_SERVER_ENV:-the defaults}.

| row | answers/s (median) | rounds | CPU per answer | ratio | ratio by CPU | target | result |
|---|---|---|---|---|---|---|---|
$(line "bare chi JSON handler, GET / (tools/benchbase)" base "" "" "")
$(line "GET /healthz" healthz base "≥ 0.85×" 0.85)
$(line "bare chi handler, /healthz's answer shape (tools/benchbase)" healthz_shape base "the ceiling of /healthz" "")
$(line "GET /users/me, $alg bearer" me base "≥ 0.6× ($stretch)" 0.6)
$(line "bare chi handler, /users/me's request and answer shape (tools/benchbase)" me_shape base "the ceiling of /users/me" "")
$(line "POST /introspect, valid access token" introspect base "≥ 0.5×" 0.5)
$(line "bare chi handler, /introspect's request and answer shape (tools/benchbase)" introspect_shape base "the ceiling of /introspect" "")
$(line "argon2id check, $slots at once (BenchmarkArgon2id)" argon2 "" "" "")
$(line "POST /token, password grant" password argon2 "≥ 0.9×" 0.9)
$(line "RS256 signature, one core (BenchmarkSign)" sign_RS256 "" "" "")
$(line "POST /token, refresh grant, RS256" refresh sign_RS256 "≥ 0.8×" 0.8)
$(line "EdDSA signature, one core (BenchmarkSign)" sign_EdDSA "" "" "")
$(line "POST /token, refresh grant, EdDSA" refresh_eddsa sign_EdDSA "≥ 5,000/s per core" /s:5000)
$(line "POST /token, client_credentials grant, EdDSA" client_eddsa sign_EdDSA "≥ 5,000/s per core" /s:5000)

"rounds" are the answers per second of each round in order. CPU per answer: the server's (or the baseline's)
user+system time per 200 answer; for argon2id the benchmark process's CPU per check, for signatures ns/op.
"ratio by CPU" is the reference's CPU per answer over the row's: the same comparison, far less moved by other load.
EOF

fl=flood.1
fl_ok=$(awk -v n="$(get $fl ok)" -v d="$(get $fl duration_us)" 'BEGIN { printf "%.1f", n / (d / 1e6) }')
fl_busy=$(awk -v n="$(get $fl busy)" -v d="$(get $fl duration_us)" 'BEGIN { printf "%.1f", n / (d / 1e6) }')
fl_thr=$(awk -v n="$(get $fl throttled)" -v d="$(get $fl duration_us)" 'BEGIN { printf "%.1f", n / (d / 1e6) }')
shed=fail
[ "$(get $fl busy)" -gt 0 ] && [ "$(get $fl retry_after)" = "$(get $fl busy)" ] && [ "$(get $fl timeouts)" = 0 ] && shed=pass
fme_rate=$(awk '{ print $1 }' "$tmp/flood_me.1.row")
fme_share=$(awk -v a="$fme_rate" -v b="$(med me 1)" 'BEGIN { print (b > 0 ? a / b : 0) }')
fme=fail
at_least "$fme_share" 0.25 && [ "$(get flood_me.1 p99_us)" -lt 100000 ] && [ "$(get flood_me.1 other)" = 0 ] && [ "$(errs flood_me.1)" = 0 ] && fme=pass
fhz=fail
[ "$(get flood_healthz.1 ok)" -gt 0 ] && [ "$(get flood_healthz.1 other)" = 0 ] && [ "$(errs flood_healthz.1)" = 0 ] && fhz=pass
rss_ok() { [ "$1" -gt 0 ] && [ "$1" -lt "$2" ] && echo "**pass**" || echo "**fail**"; }

cat <<EOF

Login flood: $FLOOD_CONNS connections on POST /token for ${flood_secs} s (wrk -t$THREADS); during it, wrk -c$MONITOR_CONNS on /healthz, then on /users/me, ${DURATION} s each.

| flood check | measured | target | result |
|---|---|---|---|
| logins shed, not queued | 200: $fl_ok/s, 503: $fl_busy/s ($(get $fl retry_after) of $(get $fl busy) with Retry-After), 429: $fl_thr/s; p50 $(ms "$(get $fl p50_us)"), p99 $(ms "$(get $fl p99_us)"), max $(ms "$(get $fl max_us)"); $(get $fl timeouts) timeouts (10 s), $(errs $fl) socket errors and timeouts | 503 + Retry-After, none left waiting 10 s | **$shed** |
| GET /users/me during the flood | $(fmt_rate "$fme_rate")/s = $(awk -v s="$fme_share" 'BEGIN { printf "%.1f%%", 100 * s }') of its unloaded median; p99 $(ms "$(get flood_me.1 p99_us)"); statuses $(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$tmp/flood_me.1.result"), $(errs flood_me.1) socket errors | ≥ 25%, p99 < 100 ms | **$fme** |
| GET /healthz during the flood | $(fmt_rate "$(awk '{ print $1 }' "$tmp/flood_healthz.1.row")")/s; p99 $(ms "$(get flood_healthz.1 p99_us)"); statuses $(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$tmp/flood_healthz.1.result"), $(errs flood_healthz.1) socket errors | keeps answering | **$fhz** |
| peak RSS during the flood (VmRSS every 0.2 s) | $(mib "$flood_rss") (VmHWM $(mib "$hwm_before") before the flood, $(mib "$peak_hwm") after) | < 256 MiB | $(rss_ok "$flood_rss" 262144) |
| idle RSS after start | $(mib "$idle_rss") | < 30 MiB | $(rss_ok "$idle_rss" 30720) |

Store calls per request (gatehouse_store_duration_seconds of /metrics before and after the requests,
sent one at a time; the sync loop's calls, $(paste -sd, - <"$tmp/store.background" | sed 's/,/, /g; s/^$/none/'), left out):

| request | requests | store calls per request | by operation (mean latency) | budget |
|---|---|---|---|---|
EOF
for kind in login refresh bearer introspect; do
	n=$(cat "$tmp/store.$kind.n")
	{ read -r per; read -r by; } < <(store_per "$kind" "$n")
	case $kind in
	login) label="POST /token, password grant"; budget=2 ;;
	refresh) label="POST /token, refresh grant"; budget=1 ;;
	bearer) label="GET /users/me, bearer"; budget=0 ;;
	introspect) label="POST /introspect, bearer"; budget="" ;;
	esac
	if [ -n "$budget" ]; then
		budget="$budget ($(if awk -v p="$per" -v b="$budget" 'BEGIN { exit !(p <= b) }'; then echo within; else echo over; fi))"
	fi
	printf '| %s | %s | %s | %s | %s |\n' "$label" "$n" "$per" "${by:-none}" "$budget"
done
{ read -r per; read -r by; } < <(store_per flood "$(get $fl requests)")
printf '| during the flood, per answer of its POST /token | %s | %s | %s | |\n' "$(get $fl requests)" "$per" "${by:-none}"

printf '\nAnswers by status over the rounds / socket errors and timeouts:\n'
for row in base healthz healthz_shape me me_shape introspect introspect_shape password refresh refresh_eddsa client_eddsa; do
	printf -- '- %s: %s / %s' "$row" "$(statuses "$row")" "$(round_errs "$row")"
	case $row in
	refresh | refresh_eddsa)
		printf '; server outcomes: %s; requests with no chain left: %s' \
			"$(outcomes "$row" | awk '{ printf "%s%s %d", sep, $1, $2; sep = ", " }')" "$(sum_field "$row" exhausted)"
		;;
	esac
	printf '\n'
done
printf -- '- flood: %s / %s; meanwhile /healthz %s, /users/me %s\n' \
	"$(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$tmp/$fl.result")" "$(errs $fl)" \
	"$(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$tmp/flood_healthz.1.result")" "$(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$tmp/flood_me.1.result")"
for row in refresh refresh_eddsa; do
	broken=$(( $(sum_field "$row" exhausted) + $(outcome "$row" reuse_detected) + $(outcome "$row" grace_replay) + $(outcome "$row" failed) ))
	if [ "$broken" -gt 0 ]; then
		printf '\n%s: chains broke (%s requests found no chain, reuse %s, grace replays %s, failed %s): see the unexpected answers.\n' \
			"$row" "$(sum_field "$row" exhausted)" "$(outcome "$row" reuse_detected)" "$(outcome "$row" grace_replay)" "$(outcome "$row" failed)"
	fi
done
if grep -qh '^unexpected answer' "$tmp"/*.out 2>/dev/null; then
	printf '\nUnexpected answers (the first few per wrk thread):\n\n'
	grep -h '^unexpected answer' "$tmp"/*.out | sort | uniq -c | sort -rn | head -10 | sed 's/^/    /'
fi
