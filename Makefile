# Dark Factory: the two commands of the README, and the steps they share.
#
#   make run    build the example skills and start a host serving them on
#               127.0.0.1:8080 (embedded defaults, no external service)
#   make test   formatting, lints, unit and end-to-end tests (installs
#               redis-server with apt when missing: the fleet's Redis tests;
#               prometheus with apt: the factory's scrape and PromQL test;
#               componentize-py from PyPI and componentize-js from npm: the
#               Python and JavaScript skills; schemathesis from PyPI: the
#               API's contract)
#   make bench  the benchmarks of docs/benchmarks.md
#
# Each installs the pinned toolchain and its Wasm targets with rustup
# when they are missing (automatic installation may be off: RUSTUP_AUTO_INSTALL=0).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

TOOLCHAIN := $(shell sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
# Skills are components (wasm32-wasip2); the workflow interpreter the host
# carries is a core module with no WASI imports (wasm32-unknown-unknown).
TARGETS := wasm32-wasip2 wasm32-unknown-unknown
EXAMPLE_SKILLS := echo text-stats recall blocked dispatch
# The example workflows, each served from its file.
EXAMPLE_WORKFLOWS := blocked-escalator agent-down ingest-lag ci-not-green agent-cost
TEST_SKILLS := spin hog trap alien probe clerk
WASM_DIR := target/wasm32-wasip2/skill
RUN_DIR ?= .darkfactory
LISTEN ?= 127.0.0.1:8080

# Skills in other languages (skills/skill-notes-py, skills/skill-notes-js),
# built with the toolchains their authors use. jco 1.35.0 cannot read a WIT
# path, so JavaScript is built with componentize-js's own CLI.
COMPONENTIZE_PY := 0.25.1
COMPONENTIZE_JS := 0.23.0
LANG_DIR := target/lang-skills
SCHEMATHESIS := 4.32.5
API_TOOLS := target/api-tools
JS_TOOLS := target/lang-tools

.PHONY: run test bench toolchain skills redis prometheus lang-tools lang-skills api-tools cli-tools

# The Redis fleet registry's tests run against a real redis-server.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

toolchain:
	@command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)" >&2; exit 1; }
	@if ! rustup toolchain list | grep -q "^$(TOOLCHAIN)-"; then \
		echo "installing Rust $(TOOLCHAIN)"; \
		rustup toolchain install "$(TOOLCHAIN)" --profile minimal \
			--component rustfmt --component clippy $(addprefix --target ,$(TARGETS)); \
	fi
	@for t in $(TARGETS); do \
		rustup +$(TOOLCHAIN) target list --installed | grep -qx "$$t" \
			|| rustup +$(TOOLCHAIN) target add "$$t"; \
	done
	@rustup +$(TOOLCHAIN) component list --installed | grep -q '^clippy' \
		|| rustup +$(TOOLCHAIN) component add clippy rustfmt

redis:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (apt) for the fleet registry's tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# A real Prometheus (Debian's 2.42) scrapes /metrics and answers a PromQL
# rule in tests/e2e/factory.rs. Its package's daemon is not wanted: the
# test starts its own on a loopback port.
prometheus:
	@command -v prometheus >/dev/null || { \
		echo "installing prometheus (apt) for the factory's Prometheus test"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

# curl, for the README's tour (tests/e2e/docs.rs runs it as written).
cli-tools:
	@command -v curl >/dev/null || { \
		echo "installing curl (apt) for the README tour's test"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

lang-tools:
	@componentize-py --version 2>/dev/null | grep -qx "componentize-py $(COMPONENTIZE_PY)" || { \
		echo "installing componentize-py $(COMPONENTIZE_PY) (PyPI)"; \
		python3 -m pip install --quiet --disable-pip-version-check "componentize-py==$(COMPONENTIZE_PY)"; }
	@grep -qs '"version": "$(COMPONENTIZE_JS)"' \
		$(JS_TOOLS)/node_modules/@bytecodealliance/componentize-js/package.json || { \
		echo "installing componentize-js $(COMPONENTIZE_JS) (npm)"; \
		mkdir -p $(JS_TOOLS) && npm install --silent --no-audit --no-fund --prefix $(JS_TOOLS) \
			"@bytecodealliance/componentize-js@$(COMPONENTIZE_JS)"; }

# Schemathesis fuzzes the HTTP API against its OpenAPI document
# (tests/e2e/contract.rs), from a virtual environment of its own.
api-tools:
	@$(API_TOOLS)/venv/bin/schemathesis --version 2>/dev/null | grep -q " $(SCHEMATHESIS)$$" || { \
		echo "installing schemathesis $(SCHEMATHESIS) (PyPI)"; \
		rm -rf $(API_TOOLS)/venv; \
		python3 -m venv $(API_TOOLS)/venv 2>/dev/null || { rm -rf $(API_TOOLS)/venv; \
			$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
			python3 -m venv $(API_TOOLS)/venv; }; \
		$(API_TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check \
			"schemathesis==$(SCHEMATHESIS)"; }

# Each is rebuilt only when its source, the WIT or the toolchain changed
# (a build takes 5-10 s): the key of the last build is kept beside it.
lang-skills: lang-tools
	cargo build --release -p darkfactory
	@mkdir -p $(LANG_DIR)
	@key=$$( (cat skills/skill-notes-py/app.py wit/*.wit wit/wasi/*.wit; componentize-py --version) \
		| sha256sum | cut -c1-16); \
	if [ "$$(cat $(LANG_DIR)/notes-py.key 2>/dev/null)" != "$$key" ]; then \
		echo "building notes-py (componentize-py)"; \
		rm -rf $(LANG_DIR)/notes-py; \
		./target/release/darkfactory new notes-py --lang python --into $(LANG_DIR) >/dev/null; \
		cp skills/skill-notes-py/app.py $(LANG_DIR)/notes-py/app.py; \
		(cd $(LANG_DIR)/notes-py && componentize-py -q -d wit -w skill componentize app -o ../notes-py.wasm); \
		echo "$$key" > $(LANG_DIR)/notes-py.key; \
	fi
	@key=$$( (cat skills/skill-notes-js/app.js wit/*.wit; echo $(COMPONENTIZE_JS)) | sha256sum | cut -c1-16); \
	if [ "$$(cat $(LANG_DIR)/notes-js.key 2>/dev/null)" != "$$key" ]; then \
		echo "building notes-js (componentize-js)"; \
		$(JS_TOOLS)/node_modules/.bin/componentize-js --wit wit --world-name skill \
			-o $(LANG_DIR)/notes-js.wasm skills/skill-notes-js/app.js >/dev/null; \
		echo "$$key" > $(LANG_DIR)/notes-js.key; \
	fi

skills: toolchain
	cargo build --profile skill --target wasm32-wasip2 \
		$(addprefix -p skill-,$(EXAMPLE_SKILLS) $(TEST_SKILLS))

run: skills
	cargo build --release -p darkfactory
	mkdir -p "$(RUN_DIR)/skills"
	for s in $(EXAMPLE_SKILLS); do \
		f="$(WASM_DIR)/skill_$${s//-/_}.wasm"; \
		cmp -s "$$f" "$(RUN_DIR)/skills/$$s.wasm" || cp "$$f" "$(RUN_DIR)/skills/$$s.wasm"; \
	done
	for w in $(EXAMPLE_WORKFLOWS); do \
		f="skills/$$w.workflow.md"; \
		cmp -s "$$f" "$(RUN_DIR)/skills/$$w.workflow.md" || cp "$$f" "$(RUN_DIR)/skills/$$w.workflow.md"; \
	done
	./target/release/darkfactory serve --listen "$(LISTEN)" \
		--skills "$(RUN_DIR)/skills" --data "$(RUN_DIR)/data"

test: skills redis prometheus lang-skills api-tools cli-tools
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo clippy --release -p darkfactory-workflow-vm --features guest \
		--target wasm32-unknown-unknown -- -D warnings
	cargo test --release -p darkfactory -p darkfactory-sdk -p darkfactory-workflow-vm \
		-p skill-text-stats

bench: skills redis lang-skills
	cargo bench -p darkfactory --bench core
	cargo bench -p darkfactory --bench memory
	cargo bench -p darkfactory --bench fleet
	cargo bench -p darkfactory --bench workflow
	cargo bench -p darkfactory --bench drain
	cargo bench -p darkfactory --bench languages
	cargo bench -p darkfactory --bench factory
