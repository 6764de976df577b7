# gatehouse: `make run` serves on 127.0.0.1:8080, `make test` runs every Go test.
GO ?= go

# The race detector needs cgo and a C compiler; without one the tests run
# without it. CI sets RACE=-race so a missing compiler fails there.
RACE ?= $(shell CC=$$($(GO) env CC); command -v $${CC%% *} >/dev/null 2>&1 && [ "$$($(GO) env CGO_ENABLED)" = 1 ] && echo -race)

GENERATED := internal/httpapi/server.gen.go client/client.gen.go

.PHONY: run build test test-postgres e2e fuzz bench scale sdk-ts-generate sdk-ts-test example-node-test generate verify lint-spec vet ci clean

run: ## serve gatehouse with the embedded SQLite store under ./data/
	$(GO) run ./cmd/server

build: ## build the server binary into bin/
	$(GO) build -trimpath -o bin/gatehouse ./cmd/server

test: ## run every Go test (with -race when a C compiler is present)
	@[ -n "$(RACE)" ] || echo "make test: no C compiler for the race detector; running without -race"
	$(GO) test $(RACE) -count=1 ./...
	@[ -n "$$GATEHOUSE_TEST_POSTGRES_URL" ] || echo "make test: the PostgreSQL tests were skipped (GATEHOUSE_TEST_POSTGRES_URL is unset); make test-postgres runs them against $(POSTGRES_URL)"
	@[ -n "$$GATEHOUSE_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || echo "make test: the browser test was skipped (no chromium); make e2e installs Debian's chromium and runs it"
	@[ -n "$$GATEHOUSE_PYTHON" ] || /usr/bin/python3 -c 'import fastapi, uvicorn, jwt, cryptography' >/dev/null 2>&1 || echo "make test: the FastAPI example was skipped (no Python with FastAPI); apt-get install python3-fastapi python3-uvicorn python3-jwt python3-cryptography runs it"

# The PostgreSQL tests skip unless GATEHOUSE_TEST_POSTGRES_URL names a server.
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

test-postgres: ## run every Go test, PostgreSQL ones included (needs a server at POSTGRES_URL)
	GATEHOUSE_TEST_POSTGRES_URL='$(POSTGRES_URL)' $(GO) test $(RACE) -count=1 ./...

generate: ## regenerate the server stubs and the Go client from api/openapi.yaml (make sdk-ts-generate: the TypeScript types)
	$(GO) generate ./internal/httpapi/ ./client/

verify: generate ## fail when the committed generated code differs from api/openapi.yaml
	@git diff --exit-code -- $(GENERATED) || { echo "generated code is stale: run 'make generate' and commit the result"; exit 1; }
	@[ -z "$$(git ls-files --others -- $(GENERATED))" ] || { echo "generated files are not tracked by git: $(GENERATED)"; exit 1; }
	cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run --silent check-generated

SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

e2e: ## drive Swagger UI at /docs in headless Chromium, installing Debian's chromium when missing; screenshots go to e2e-artifacts/
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	GATEHOUSE_CHROMIUM="$$(command -v chromium)" $(GO) test $(RACE) -count=1 -v -run 'TestBrowser' ./cmd/server/

sdk-ts-generate: ## regenerate sdk/typescript/src/schema.d.ts from api/openapi.yaml (needs Node.js and npm)
	cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run --silent generate

sdk-ts-test: ## test the TypeScript SDK against a real server on 127.0.0.1 (needs Node.js and npm)
	GO='$(GO)' bash scripts/node-test-against-server.sh sdk/typescript

example-node-test: ## test examples/node-resource-server (jose) against a real server on 127.0.0.1 (needs Node.js and npm)
	GO='$(GO)' bash scripts/node-test-against-server.sh examples/node-resource-server

bench: ## load-test the real server on 127.0.0.1 with wrk, pinned one core each beside a bare chi baseline (installs Debian's wrk when missing), and print each target with its ratio and pass/fail; BENCH_DURATION=… seconds per row per round (default 3, 5 rounds)
	GO='$(GO)' bash scripts/bench.sh

SCALE_FLAGS ?=

scale: ## seed 100,000 users and sessions and 400,000 revocations through the store API, measure the real server on it against an empty store (loopback only, 3 to 4 minutes) and print a markdown table; SCALE_FLAGS=… (-postgres URL, -h for the rest)
	$(GO) run ./tools/scale -go '$(GO)' $(SCALE_FLAGS)

FAULTRUN_FLAGS ?=

.PHONY: faultrun
faultrun: ## fault-inject the real server on 127.0.0.1 (PostgreSQL at POSTGRES_URL restarted, stopped and frozen through a TCP proxy; SQLite's disk filled on a tmpfs, as root only) and print the table of RELIABILITY.md (about 3 minutes); FAULTRUN_FLAGS=… (-h for them)
	GO='$(GO)' $(GO) run ./tools/faultrun -postgres '$(POSTGRES_URL)' $(FAULTRUN_FLAGS)

FUZZTIME ?= 30s

fuzz: ## run every fuzz target for FUZZTIME each (default 30s), stopping at the first failure
	GO='$(GO)' FUZZTIME='$(FUZZTIME)' bash scripts/fuzz.sh

lint-spec: ## lint api/openapi.yaml with Redocly CLI (recommended-strict) and Spectral (spectral:oas, warnings fail) (needs Node.js and npm)
	cd tools/speclint && npm ci --no-audit --no-fund --loglevel=error && npm run --silent lint

vet: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

ci: vet verify lint-spec test e2e sdk-ts-test example-node-test ## what .ci/run runs (it also fuzzes each target for 10s)

clean:
	rm -rf bin
