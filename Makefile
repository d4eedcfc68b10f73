# mizar: XDP overlay. `make deps` once on a fresh machine (root), then `make test`.
GO ?= go
CLANG ?= clang-16

.PHONY: deps generate generate-check build test bench vet clean

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-16 llvm-16 libbpf-dev iproute2 ethtool iputils-ping tshark iperf3 >/dev/null
	$(GO) mod download

generate:
	$(GO) generate ./dataplane/

# Regenerating must change nothing: the committed bpf2go output is what `go build` uses.
generate-check: generate
	git diff --exit-code -- dataplane/ bpf/
	@test -z "$$(git status --porcelain -- dataplane/ bpf/)" || { git status --short -- dataplane/ bpf/; echo "generate left untracked files"; exit 1; }

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

# Privileged: loads BPF programs and creates network namespaces. Run as root.
test: vet
	$(GO) test ./... -count=1 -timeout 30m

# The full measurement (as root): BPF per-packet costs against the reference program, then
# the provisioning sweep and traffic against the kernel's paths, written as a report folder
# under reports/runs/ (summary.md, report.json, plots). BENCH_FLAGS passes flags to mizar bench.
bench:
	$(GO) test ./dataplane/ -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m
	$(GO) run ./tools/mizar bench $(BENCH_FLAGS)

clean:
	$(GO) run ./tools/mizar clean
