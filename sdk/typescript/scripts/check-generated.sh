#!/bin/sh
# npm run check-generated: regenerates src/schema.d.ts from api/openapi.yaml
# and fails when it differs from the committed file, or is not committed.
set -eu
cd "$(dirname "$0")/.."
npm run --silent generate >/dev/null
git diff --exit-code -- src/schema.d.ts || {
  echo "sdk/typescript/src/schema.d.ts is stale: run 'npm run generate' in sdk/typescript and commit the result" >&2
  exit 1
}
git ls-files --error-unmatch src/schema.d.ts >/dev/null 2>&1 || {
  echo "sdk/typescript/src/schema.d.ts is not tracked by git: commit it" >&2
  exit 1
}
