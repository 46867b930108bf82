#!/usr/bin/env python3
"""Capture the `tools/list` of real MCP servers into fixtures/tools/<name>.json.

Each file holds the raw MCP `tools` array exactly as the server sends it (all
pages concatenated, no SDK-side filtering or re-serialisation of fields), so the
typegen tests run against what real servers emit without needing the servers.

Usage:
    npm ci --prefix fixtures/servers      # the npm servers
    pip install mcp                        # the Python MCP SDK (client side)
    python3 -m venv .tmp/pyservers         # the PyPI servers, kept apart from the SDK
    .tmp/pyservers/bin/pip install mcp-server-git==2026.10.19 mcp-server-time==2026.10.19
    python3 scripts/capture_tools.py [NAME ...]   # default: every server below

PyPI servers are looked up in .tmp/pyservers/bin, then on PATH.

Servers start without credentials: listing tools needs none. Dummy tokens are
passed where a server insists on one being present. Also (re)writes
fixtures/tools/SOURCES.md with each server's package and reported version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "fixtures" / "servers" / "node_modules" / ".bin"
OUT = ROOT / "fixtures" / "tools"

# name -> (package, command, args, extra env). `{tmp}` is replaced by a fresh
# temporary directory (the filesystem server needs an allowed directory).
SERVERS: dict[str, tuple[str, str, list[str], dict[str, str]]] = {
    "everything": ("@modelcontextprotocol/server-everything", str(BIN / "mcp-server-everything"), ["stdio"], {}),
    "filesystem": ("@modelcontextprotocol/server-filesystem", str(BIN / "mcp-server-filesystem"), ["{tmp}"], {}),
    "memory": ("@modelcontextprotocol/server-memory", str(BIN / "mcp-server-memory"), [], {"MEMORY_FILE_PATH": "{tmp}/memory.jsonl"}),
    "github": ("@modelcontextprotocol/server-github", str(BIN / "mcp-server-github"), [], {}),
    "notion": ("@notionhq/notion-mcp-server", str(BIN / "notion-mcp-server"), [], {}),
    # PyPI servers (pydantic schemas: $defs, anyOf-with-null, outputSchema), resolved on PATH or in --venv.
    "git": ("mcp-server-git", "mcp-server-git", ["--repository", "{tmp}"], {}),
    "time": ("mcp-server-time", "mcp-server-time", ["--local-timezone", "UTC"], {}),
}

PY_BIN = ROOT / ".tmp" / "pyservers" / "bin"

RAW = TypeAdapter(dict[str, Any])


async def capture(name: str, tmp: str) -> tuple[list[dict[str, Any]], str]:
    package, command, args, env = SERVERS[name]
    if not os.path.isabs(command):
        found = shutil.which(command, path=f"{PY_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        if found is None:
            raise SystemExit(f"error: `{command}` not found\nhint: install it as described in {__file__}")
        command = found
    params = StdioServerParameters(
        command=command,
        args=[a.replace("{tmp}", tmp) for a in args],
        env={k: v.replace("{tmp}", tmp) for k, v in env.items()},
        cwd=tmp,
    )
    if name == "git":  # the git server refuses to start outside a repository
        subprocess.run(["git", "init", "-q", tmp], check=True)
    tools: list[dict[str, Any]] = []
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                cursor: str | None = None
                while True:
                    request = types.ListToolsRequest(
                        params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    )
                    # A raw dict result type: the SDK hands back the server's JSON untouched.
                    page = await session.send_request(request, RAW)
                    tools.extend(page.get("tools", []))
                    cursor = page.get("nextCursor")
                    if not cursor:
                        break
    info = init.server_info
    manifest = ROOT / "fixtures" / "servers" / "node_modules" / package / "package.json"
    if manifest.exists():
        version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
        source = f"npm `{package}@{version}`"
    else:
        source = f"PyPI `{package}=={info.version}`"
    return tools, f"{source} (serverInfo: {info.name} {info.version})"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"servers to capture (default: all of {', '.join(SERVERS)})")
    names = parser.parse_args().names or list(SERVERS)
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        print(f"error: unknown server(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if not BIN.is_dir():
        print(f"error: {BIN} is missing\nhint: run `npm ci --prefix fixtures/servers`", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"capture-{name}-") as tmp:
            tools, source = await capture(name, tmp)
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(tools, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        sources[name] = source
        print(f"{name}: {len(tools)} tools -> {path.relative_to(ROOT)}  [{source}]")
    write_sources(sources)
    return 0


def write_sources(new: dict[str, str]) -> None:
    """Merge the captured servers' versions into fixtures/tools/SOURCES.md."""
    path = OUT / "SOURCES.md"
    rows: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("| `") and line.count("|") == 3:
                _, key, value, _ = line.split("|")
                rows[key.strip().strip("`")] = value.strip()
    rows.update(new)
    lines = [
        "# Captured tool lists",
        "",
        "Raw MCP `tools/list` results, regenerated with `python3 scripts/capture_tools.py`.",
        "",
        "| file | server |",
        "| --- | --- |",
    ]
    lines += [f"| `{key}` | {rows[key]} |" for key in sorted(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
