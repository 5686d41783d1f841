# mimicit: `make demo` runs the whole pipeline on the bundled demo corpus, `make test` runs the
# tests. Both install what is missing first (scripts/setup.sh: Debian packages, the torch venv).
SHELL := /bin/bash
ENV := eval "$$(scripts/setup.sh --env)"
OUT ?= out/demo

.PHONY: setup build release release-notorch demo test lint bench clean-demo

setup:
	@scripts/setup.sh

build: setup
	@$(ENV) && cargo build --bin mimicit

release: setup
	@$(ENV) && cargo build --release --bin mimicit

# Decode-only build without libtorch (no CLIP features; starts without loading libtorch).
release-notorch: setup
	@$(ENV) && cargo build --release --no-default-features --bin mimicit

demo: build
	@$(ENV) && ./target/debug/mimicit run scenarios/demo.toml --out $(OUT) && \
	  ./target/debug/mimicit verify $(OUT) >/dev/null && \
	  echo "demo: outputs in $(OUT) (manifest: $(OUT)/manifest.json, report: $(OUT)/report/index.html)"

# Tests that cannot run here (a tool the set-up installs is missing) are listed at the end;
# under CI=true they fail instead.
test: setup
	@$(ENV) && rm -f target/test-skips.log && rc=0 && \
	  { cargo test --all-targets && cargo test --no-default-features --lib \
		&& cargo check --no-default-features --bins; } || rc=$$?; \
	  scripts/test-skips.sh; exit $$rc

lint: setup
	@$(ENV) && cargo fmt --all -- --check && cargo clippy --all-targets -- -D warnings \
		&& cargo clippy --all-targets --no-default-features -- -D warnings

bench: setup
	@$(ENV) && cargo bench

clean-demo:
	rm -rf $(OUT)
