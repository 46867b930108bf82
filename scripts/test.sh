#!/usr/bin/env bash
# Run Isola's whole test suite on a fresh machine: install what the tests need from the package
# registries (the real MCP servers and TypeScript from npm, the Python MCP SDK from PyPI), then
# every Rust test (nextest) and the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test fixtures (npm: MCP servers, typescript; PyPI: mcp)"
npm ci --prefix fixtures/servers --no-audit --no-fund --loglevel=error
if ! python3 -c "import mcp" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r fixtures/python-requirements.txt
fi

echo "== building"
cargo build --workspace --all-targets --locked

echo "== tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
cargo test --workspace --locked --doc
