#!/usr/bin/env bash
# Runs every Go fuzz target for FUZZTIME each (default 30s), one after
# another, and stops at the first failure. Go fuzzes one target per
# package per invocation, hence one `go test` per target.
#
#   scripts/fuzz.sh                      # all targets, 30s each
#   FUZZTIME=5m scripts/fuzz.sh          # longer
#   scripts/fuzz.sh FuzzHandler          # only the targets named
#
# A failing input is saved under the package's testdata/fuzz/<Name>/, where
# plain `go test` replays it from then on: commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-30s}"

# package name: every fuzz target of the module.
targets=(
	"./internal/auth/ FuzzParseTokenRequest"
	"./internal/auth/ FuzzBearerToken"
	"./internal/auth/ FuzzVerify"
	"./internal/users/ FuzzVerify"
	"./internal/httpapi/ FuzzHandler"
	"./internal/httpapi/ FuzzIntrospectionMatchesGenerated"
	"./internal/httpapi/ FuzzFormCheckAgreesWithKinOpenAPI"
	"./internal/httpapi/ FuzzParseQueryMatchesStandardLibrary"
)

selected=()
for t in "${targets[@]}"; do
	name="${t#* }"
	if [ "$#" -eq 0 ]; then
		selected+=("$t")
		continue
	fi
	for want in "$@"; do
		[ "$want" = "$name" ] && selected+=("$t")
	done
done
[ "${#selected[@]}" -gt 0 ] || { echo "fuzz.sh: no target named $*" >&2; exit 2; }

# corpus PKG NAME: the files of a target's committed corpus.
corpus() { { ls "${1}testdata/fuzz/$2" 2>/dev/null || true; } | sort; }

# Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" at the end of -fuzztime when its workers are starved
# of CPU (go.dev/issue/75804, fixed in Go 1.27): no input failed and none
# is written. Such a run is retried once; a failure that wrote an input,
# or any other failure, stops the script.
for t in "${selected[@]}"; do
	pkg="${t%% *}"
	name="${t#* }"
	for attempt in 1 2; do
		echo "== $name in $pkg for $FUZZTIME"
		before=$(corpus "$pkg" "$name")
		out=$(mktemp)
		if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" = 0 ]; then
			rm -f "$out"
			break
		fi
		if [ "$attempt" = 1 ] && [ "$(corpus "$pkg" "$name")" = "$before" ] &&
			grep -q '^    context deadline exceeded$' "$out" && ! grep -q 'Failing input written' "$out"; then
			rm -f "$out"
			echo "fuzz.sh: $name: the coordinator's deadline race (go.dev/issue/75804), no failing input; running it again" >&2
			continue
		fi
		rm -f "$out"
		echo "fuzz.sh: $name in $pkg failed; the input is under ${pkg}testdata/fuzz/$name/" >&2
		exit 1
	done
done
