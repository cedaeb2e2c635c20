# hipnet developer targets. Run `make help` for the list.

GO       ?= go
FUZZTIME ?= 10s

# staticcheck is pinned so that every machine reports the same findings:
# module version v0.8.2 is staticcheck release 2026.2.2, the latest at the
# time of pinning; it supports Go 1.26. It is installed into .bin/ in the
# repository (ignored by git) when missing or at another version, so a
# staticcheck elsewhere on PATH never decides the result.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK         := $(CURDIR)/.bin/staticcheck

.PHONY: help demo test fuzz bench benchtable lint e2e

help:
	@echo 'make help    this list'
	@echo 'make demo    run cmd/hip-demo: two nodes on loopback meet by HIT (base exchange, a stream'
	@echo '             and a datagram over ESP, CLOSE), printing every HIP packet; it exits non-zero'
	@echo '             if a step fails. `go run ./cmd/hip-demo -core` walks the sans-I/O core'
	@echo '             in memory instead: base exchange, ESP, rekey, CLOSE'
	@echo 'make test    every test (go test ./...; the TestE2E* ones skip without root), then'
	@echo '             all again under -race except the zero-allocation checks (Allocs),'
	@echo '             which only hold without it'
	@echo 'make e2e     the TestE2E* tests: real NATs in network namespaces; needs root, ip and'
	@echo '             iptables, and fails rather than skips without them'
	@echo 'make fuzz    every Fuzz* target of every package, FUZZTIME each (default $(FUZZTIME));'
	@echo '             fails only if a target wrote a failing input to testdata/fuzz/'
	@echo 'make bench   every benchmark with allocation counts (-benchmem), no tests'
	@echo 'make benchtable  the performance table: streams, datagrams and handshakes against'
	@echo '             TLS, quic-go and UDP measured in the same run, ratios and goals, for each'
	@echo '             stream transport, and as root bulk across a real 1500-octet veth too'
	@echo '             (about six minutes on 2 cores)'
	@echo 'make lint    gofmt -l, go vet and staticcheck $(STATICCHECK_VERSION) (installed into .bin/'
	@echo '             when missing or at another version)'

demo:
	$(GO) run ./cmd/hip-demo

# The whole suite under -race takes about 20 s on 2 cores, so the race pass
# runs everything (no -short). It runs after a plain pass because the
# testing.AllocsPerRun checks (the zero-allocation guarantees of the hot
# path) only hold without the race detector, whose instrumentation
# allocates: the plain pass checks them and the race pass skips them.
test:
	$(GO) test -count=1 ./...
	$(GO) test -race -count=1 -skip 'Allocs' ./...

# End-to-end tests with real NATs, built by internal/netns: network
# namespaces joined by veth pairs and a bridge, routers that translate with
# iptables MASQUERADE (endpoint-independent mapping) or MASQUERADE
# --random-fully (symmetric). Convention: every such test, in any package,
# is named TestE2E... and is selected here by -run '^TestE2E'. They need
# root, ip (iproute2) and iptables; without them they skip under `make
# test`, while HIPNET_E2E=1 here makes them fail instead, so this target
# cannot pass by skipping. Their traffic stays inside the namespaces each
# test creates and removes (198.18.0.0/24 and 10.100-199.0.0/24 there).
e2e:
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "make e2e: needs root (network namespaces, iptables); run it as root" >&2; exit 1; \
	fi
	HIPNET_E2E=1 $(GO) test -count=1 -run '^TestE2E' ./...

# Every Fuzz* function of every package, found with `go test -list`, so new
# targets are picked up without editing this file. One target at a time
# (go test -fuzz accepts a single target per run). -fuzzminimizetime 100x keeps
# the shrinking of each new input short: by default it can take up to 60 s,
# which would eat a 10 s run.
#
# A target fails only if it wrote a failing input to testdata/fuzz/<Name>.
# Go 1.26's fuzz coordinator can end a -fuzztime run with a bare "context
# deadline exceeded" and no input (golang/go#75804, fixed in Go 1.27): that
# is reported as a flake, not a failure.
fuzz:
	@set -e; failed=0; \
	pkgs=$$($(GO) list ./...); \
	for pkg in $$pkgs; do \
		dir=$$($(GO) list -f '{{.Dir}}' "$$pkg"); \
		names=$$($(GO) test -list '^Fuzz' "$$pkg"); \
		for name in $$(printf '%s\n' "$$names" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$name ($(FUZZTIME))"; \
			before=$$(ls "$$dir/testdata/fuzz/$$name" 2>/dev/null | wc -l); \
			if ! $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x "$$pkg"; then \
				after=$$(ls "$$dir/testdata/fuzz/$$name" 2>/dev/null | wc -l); \
				if [ "$$after" -gt "$$before" ]; then \
					echo "FAIL: $$name wrote a failing input to $$dir/testdata/fuzz/$$name"; failed=1; \
				else \
					echo "flake: $$name stopped with no failing input (golang/go#75804)"; \
				fi; \
			fi; \
		done; \
	done; \
	exit $$failed

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

benchtable:
	$(GO) run ./internal/tools/benchtable

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Reinstall when the binary is missing or reports another version.
$(STATICCHECK): FORCE
	@if ! "$@" -version 2>/dev/null | grep -q '($(STATICCHECK_VERSION:v%=%))'; then \
		echo "installing staticcheck $(STATICCHECK_VERSION) into .bin/"; \
		GOBIN="$(CURDIR)/.bin" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi

.PHONY: FORCE
FORCE:
