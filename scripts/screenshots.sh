#!/usr/bin/env bash
# Screenshots of isola serve's web UI, as the README shows them (docs/screenshots/*.png): starts
# `isola serve` on the example's two servers in a throwaway directory, and drives Debian's
# Chromium through the UI with the browser test's script (fixtures/browser/ui.mjs: sign in, run
# a script, approve a held call, browse, usage). Needs what scripts/test.sh installs
# (fixtures/servers, fixtures/browser, chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-docs/screenshots}
npm ci --prefix fixtures/servers --no-audit --no-fund --loglevel=error
npm ci --prefix fixtures/browser --no-audit --no-fund --loglevel=error
command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
cargo build --release -p isola-cli
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/data"
cp -r examples/data/. "$work/data/"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
servers=$root/fixtures/servers/node_modules/@modelcontextprotocol
# (The chat is left out: it needs a model; the test suite points the server at its scripted one.)
cat > "$work/isola.json" <<JSON
{
  "mcpServers": {
    "everything": { "command": "node", "args": ["$servers/server-everything/dist/index.js"] },
    "fs": { "command": "node", "args": ["$servers/server-filesystem/dist/index.js", "$work/data"] }
  },
  "isola": {
    "effects": { "fs": { "create_directory": "destructive" } },
    "tokens": { "supervisor": { "token": "$token", "role": "operator" } }
  }
}
JSON
XDG_DATA_HOME=$work/state "$root/target/release/isola" --config "$work/isola.json" serve --http 127.0.0.1:0 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do
  url=$(sed -n 's|^isola: serving MCP (Streamable HTTP) at \(http://[^/]*\)/mcp$|\1|p' "$work/serve.log")
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { cat "$work/serve.log"; exit 1; }
ISOLA_URL=$url ISOLA_TOKEN=$token ISOLA_MADE_DIR=$work/data/reports ISOLA_PLAN_DIR=$work/data/planned \
  SCREENSHOTS=$root/$out \
  node fixtures/browser/ui.mjs
echo "screenshots in $out"
