#!/usr/bin/env bash
# Run Isola's whole test suite on a fresh machine: check the code's own rules (cargo fmt, clippy
# with warnings denied, no unused dependency: cargo-machete from crates.io), install what the
# tests need from the package registries (from npm: the real MCP servers, TypeScript, Node 22,
# the MCP conformance suite and Inspector, playwright-core; from PyPI: the Python MCP SDK; from
# Debian: PostgreSQL and Chromium for the web UI's browser test), then every Rust test
# (nextest) and the doc tests.
# Each install is idempotent (`npm ci` from the lock files); a test whose fixture is missing fails
# and names the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== the code's own rules: formatting, unused dependencies"
cargo fmt --all -- --check
if ! command -v cargo-machete >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-machete --version 0.9.2
fi
cargo machete

echo "== installing test fixtures (npm: MCP servers, typescript 5 and 7, Node 22, conformance suite, Inspector, playwright-core; PyPI: mcp, openapi-spec-validator; Debian: postgresql, chromium)"
npm ci --prefix fixtures/servers --no-audit --no-fund --loglevel=error
# Node 22 (an npm package) for the tools that need it: the conformance suite and the Inspector.
npm ci --prefix fixtures/node22 --no-audit --no-fund --loglevel=error
npm ci --prefix fixtures/conformance --no-audit --no-fund --loglevel=error
# playwright-core drives Debian's Chromium through the web UI (no browser download).
npm ci --prefix fixtures/browser --no-audit --no-fund --loglevel=error
# TypeScript 7, the native compiler: the type check's tests and benchmark (fixtures/servers has 5.9).
npm ci --prefix fixtures/tsc7 --no-audit --no-fund --loglevel=error
if ! python3 -c "import mcp, openapi_spec_validator" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r fixtures/python-requirements.txt
fi
# Debian's PostgreSQL (the store's conformance suite starts a throwaway cluster of it).
# Debian's Chromium (the web UI's test drives it headless).
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
scripts/setup-peers.sh # npm + PyPI: the peers `isola-bench peers` measures (its smoke test runs them)
scripts/setup-llama.sh

echo "== building"
cargo build --workspace --all-targets --locked

echo "== clippy (warnings denied; the workspace denies unwrap/expect outside tests)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
cargo test --workspace --locked --doc
