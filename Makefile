# mimicit: `make demo` runs the whole pipeline on the bundled demo corpus, `make test` runs the
# tests. Both install what is missing first (scripts/setup.sh: Debian packages, the torch venv).
SHELL := /bin/bash
ENV := eval "$$(scripts/setup.sh --env)"
OUT ?= out/demo

.PHONY: setup build release demo test lint bench clean-demo

setup:
	@scripts/setup.sh

# mimicit and its CLIP helper mimicit-clip (the one executable that loads libtorch).
build: setup
	@$(ENV) && cargo build --bins

release: setup
	@$(ENV) && cargo build --release --bins

demo: build
	@$(ENV) && ./target/debug/mimicit run scenarios/demo.toml --out $(OUT) && \
	  ./target/debug/mimicit verify $(OUT) >/dev/null && \
	  echo "demo: outputs in $(OUT) (manifest: $(OUT)/manifest.json, report: $(OUT)/report/index.html)"

# Tests that cannot run here (a tool the set-up installs is missing) are listed at the end;
# under CI=true they fail instead.
test: setup
	@$(ENV) && rm -f target/test-skips.log && rc=0 && \
	  { cargo test --all-targets && cargo check --no-default-features --bins; } || rc=$$?; \
	  scripts/test-skips.sh; exit $$rc

lint: setup
	@$(ENV) && cargo fmt --all -- --check && cargo clippy --all-targets -- -D warnings \
		&& cargo clippy --bins --no-default-features -- -D warnings

bench: setup
	@$(ENV) && cargo bench

clean-demo:
	rm -rf $(OUT)
