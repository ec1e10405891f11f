# Tollgate. `make test` is the one test command (CI runs it through .ci/run).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test bench bench-http lint dev clean envoy.yaml

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/tollgate ./cmd/tollgate
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/envoytest ./internal/envoytest/cmd/envoytest

# Every test, race detector on. Soaks and benchmarks live in `make bench`.
test: lint
	$(GO) test -race -count=1 -timeout 15m ./...

# Benchmarks: the Go micro-benchmarks next to the code, BENCH_COUNT runs each so
# that benchstat has samples to compare (`make bench > new.txt`, then
# `benchstat old.txt new.txt`; it skips the other lines), then a short pass of
# `tollgate bench`: Tollgate against an echo processor over real gRPC (README
# "Performance", whose numbers come from `bin/tollgate bench` with its defaults).
# The budget benchmarks and scenarios need redis-server, installed from Debian
# packages when missing (as root; deploy/need.sh).
BENCH_COUNT ?= 6
BENCH_TIME  ?= 200ms
BENCH_FLAGS ?= --duration 4s --warmup 1s --closed 1s --hold 500
# Then a soak: 100k requests of mixed scenarios, open loop at 200 req/s (about 8.5
# minutes), Tollgate's and Redis's RSS and CPU per request at its start and end. Its
# servers get small bounds for their record stores (spend ring, Redis stream), so that
# the stores are full well before the last tenth and RSS can be seen flat.
SOAK_REQUESTS ?= 100000
SOAK_FLAGS    ?= --soak $(SOAK_REQUESTS) --rate 200 --run '100k-sse50,budget-redis,cache-hit,fallback,deny-bad-key' --serve-args '--spend-memory-records=5000 --records-stream-maxlen=5000'
bench: build
	deploy/need.sh redis-server
	$(GO) test -run '^$$' -bench . -benchmem -count=$(BENCH_COUNT) -benchtime=$(BENCH_TIME) ./...
	bin/tollgate bench $(BENCH_FLAGS)
	bin/tollgate bench $(SOAK_FLAGS)

# HTTP-level load with wrk through the Go Envoy stand-in (bin/envoytest dev) and
# Tollgate, then straight at the fake provider: an end-to-end view, not Envoy's
# numbers. Loopback only, 2 x BENCH_HTTP_DURATION (default 15s); installs wrk
# from Debian packages when missing (as root). See deploy/bench.sh.
bench-http: build
	deploy/bench.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# envoy.yaml is generated: envoy.base.yaml (the hand-written part) plus what the
# example policy's routes need. Run after editing either; a test (deploy) fails
# while envoy.yaml is stale.
envoy.yaml:
	$(GO) run ./cmd/tollgate envoy render --policy deploy/policy.example.yaml --base envoy.base.yaml --out envoy.yaml

# A local stack without Docker: tollgate on :50051/:9090, the Envoy test harness on
# :10000 and the fake provider on :8080. A development and test aid, not a proxy
# for production. Point Claude Code at http://127.0.0.1:10000 with key tg-demo-key.
dev: build
	@bin/tollgate serve --grpc-addr 127.0.0.1:50051 --admin-addr 127.0.0.1:9090 --log-format console & tg=$$!; \
	  trap 'kill $$tg 2>/dev/null; wait $$tg' EXIT; \
	  bin/envoytest dev --config envoy.yaml --listen 127.0.0.1:10000 --tollgate 127.0.0.1:50051 --fake-addr 127.0.0.1:8080

clean:
	rm -rf bin
