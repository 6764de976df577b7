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

for t in "${selected[@]}"; do
	pkg="${t%% *}"
	name="${t#* }"
	echo "== $name in $pkg for $FUZZTIME"
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"; then
		echo "fuzz.sh: $name in $pkg failed; the input is under ${pkg}testdata/fuzz/$name/" >&2
		exit 1
	fi
done
