"""Drive `isola mcp` with the official Python MCP SDK client (PyPI `mcp`).

Usage: client_test.py ISOLA PROJECT_DIR TRANSPORT MODE
  TRANSPORT: stdio | http      MODE: auto (2026-07-28 via server/discover) | legacy (initialize)

PROJECT_DIR holds isola.json (server-everything as `everything`, server-filesystem as `fs` on
PROJECT_DIR/data with a.txt, b.txt, c.txt). Runs Isola three times: with the default threshold
(the API is embedded in `execute`), with --embed-max-tokens 0 (search/describe/execute), and over
`dynamic_server.py` (an upstream whose tool list changes: the host must hear of it). Prints one
`ok: ...` line per check; any failure raises (exit status 1).
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

try:
    import anyio
    from mcp import Client, StdioServerParameters
except ImportError as e:  # pragma: no cover
    print(f"the Python MCP SDK is missing ({e}): pip install mcp", file=sys.stderr)
    sys.exit(3)

ISOLA, PROJECT, TRANSPORT, MODE = sys.argv[1:5]
CONFIG = os.path.join(PROJECT, "isola.json")
DATA = os.path.join(PROJECT, "data")


def ok(what):
    print(f"ok: {what}", flush=True)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


@contextlib.asynccontextmanager
async def connect(extra_args, config=CONFIG, **client_options):
    args = ["mcp", "--config", config, *extra_args]
    if TRANSPORT == "stdio":
        # The journal's store in the project (the SDK passes only a few variables on).
        store = os.environ.get("XDG_DATA_HOME")
        env = {"XDG_DATA_HOME": store} if store else None
        params = StdioServerParameters(command=ISOLA, args=args, cwd=PROJECT, env=env)
        async with Client(params, mode=MODE, **client_options) as client:
            yield client
        return
    proc = subprocess.Popen(
        [ISOLA, *args, "--http", "127.0.0.1:0"], cwd=PROJECT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = None
        deadline = time.time() + 60
        while url is None:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"isola exited ({proc.wait()}) before serving HTTP")
            if "serving MCP" in line:
                url = line.strip().rsplit(" ", 1)[-1]
            if time.time() > deadline:
                raise AssertionError("isola did not start serving HTTP within 60 s")
        # Keep draining stderr so the process never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        async with Client(url, mode=MODE, **client_options) as client:
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def embedded_mode():
    async with connect([]) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == ["execute", "resume"], [t.name for t in tools]
        description = tools[0].description
        assert "declare namespace fs {" in description and "declare namespace everything {" in description
        assert "function readTextFile(input: ReadTextFileInput)" in description
        assert "@effect read" in description, "upstream annotations are in the JSDoc"
        ok("embedded mode: execute only, with the declarations in its description")

        script = f"""
const names: string[] = ["a.txt", "b.txt", "c.txt"];
const [sum, ...files] = await Promise.all([
  everything.getSum({{ a: 40, b: 2 }}),
  ...names.map((n) => fs.readTextFile({{ path: `{DATA}/${{n}}` }})),
]);
console.log("read", files.length, "files");
return {{ sum, firstLines: files.map((f: any) => f.content.split("\\n")[0]) }};
"""
        progress = []

        async def on_progress(value, total, message):
            progress.append(message)

        result = await client.call_tool("execute", {"code": script}, progress_callback=on_progress)
        text = text_of(result)
        assert not result.is_error, text
        record = result.structured_content
        assert record["ok"] is True, record
        assert record["result"]["firstLines"] == ["alpha", "beta", "gamma"], record["result"]
        assert "42" in json.dumps(record["result"]["sum"]), record["result"]
        assert '"firstLines":["alpha","beta","gamma"]' in text, text
        assert "\nconsole:\nread 3 files\n" in text, text
        assert "4 calls: fs.readTextFile ×3, everything.getSum ×1 (" in text, text
        ok("execute: calls server-everything and server-filesystem, result + console + call summary")
        assert "read 3 files" in progress, progress
        assert sum(1 for m in progress if m and m.startswith("fs.readTextFile done")) == 3, progress
        ok(f"progress notifications: {len(progress)} ({progress[-1]!r}, ...)")

        result = await client.call_tool("execute", {"code": f"const x = 1;\nreturn await fs.read_text_file({{ path: '{DATA}/a.txt' }});"})
        text = text_of(result)
        assert result.is_error, text
        assert text.startswith("error[runtime]: TypeError: fs.read_text_file is not a function\n  --> script.ts:2:17\n"), text
        assert "> 2 | return await fs.read_text_file(" in text, text
        assert "hint: did you mean `fs.readTextFile`?" in text, text
        ok("a failure is rendered with kind, position, code frame and hint")

        result = await client.call_tool("execute", {"code": "return await everything.getSum({ a: 'one', b: 2 });"})
        text = text_of(result)
        assert result.is_error and "`/a`: \"one\" is not of type \"number\"" in text, text
        assert "hint: the function is declared as `everything.getSum(input: { a: number; b: number })" in text, text
        ok("a wrong argument names the schema path, the expected type and the declaration")

        started = time.monotonic()
        with anyio.move_on_after(1.0):
            await client.call_tool("execute", {"code": "while (true) {}"})
        cancelled = time.monotonic()
        assert cancelled - started < 1.5, cancelled - started
        result = await client.call_tool("execute", {"code": "return 6 * 7"})
        back = time.monotonic() - cancelled
        assert text_of(result).startswith("42\n"), text_of(result)
        assert back < 1.0, f"the next execute took {back:.2f} s after the cancel"
        ok(f"cancelling `while (true) {{}}` works; the next execute answered {back * 1000:.0f} ms after the cancel")

        resources = (await client.list_resources()).resources
        uris = [str(r.uri) for r in resources]
        # `state` (durable session state) is part of the API whenever there is a store.
        assert uris == ["isola://types", "isola://types/everything", "isola://types/fs", "isola://types/state"], uris
        read = await client.read_resource("isola://types/fs")
        assert "declare namespace fs {" in read.contents[0].text and "namespace everything" not in read.contents[0].text
        ok("resources: the declarations, all and per server")


async def search_mode():
    async with connect(["--embed-max-tokens", "0"]) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == ["search", "describe", "execute", "resume"], [t.name for t in tools]
        assert "declare namespace" not in tools[2].description
        ok("search mode: search, describe, execute")

        found = text_of(await client.call_tool("search", {"query": "read a text file", "limit": 3}))
        lines = found.splitlines()
        assert len(lines) == 3 and any(l.startswith("fs.readTextFile(input: { path: string;") for l in lines), found
        found = text_of(await client.call_tool("search", {"query": "sum of two numbers", "server": "everything", "limit": 1}))
        assert found.startswith("everything.getSum(input: { a: number; b: number }): Promise<ToolOutput> — "), found
        ok("search ranks the expected functions")

        described = text_of(await client.call_tool("describe", {"names": ["fs.readTextFile", "everything.getSum"]}))
        assert "function readTextFile(input: ReadTextFileInput): Promise<ReadTextFileOutput>;" in described, described
        assert "function getSum(input: GetSumInput): Promise<ToolOutput>;" in described, described
        assert described.startswith("// Isola tool API"), described
        ok("describe gives the full declarations")

        result = await client.call_tool("execute", {"code": f"return (await fs.readTextFile({{ path: '{DATA}/b.txt' }})).content.trim()"})
        assert text_of(result).startswith("beta\n"), text_of(result)
        ok("execute in search mode")


async def upstream_tools_change():
    """An upstream server adds a tool: Isola rebuilds the API and tells the host."""
    config = os.path.join(PROJECT, "dynamic.json")
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dynamic_server.py")
    with open(config, "w") as f:
        json.dump({"mcpServers": {"dyn": {"command": sys.executable, "args": [server]}}}, f)
    changed = anyio.Event()

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    add = {"code": 'return await dyn.addTool({ name: "fresh_one" })'}
    async with connect([], config=config, message_handler=on_message) as client:
        before = (await client.list_tools()).tools
        assert "function freshOne(" not in before[0].description
        if MODE == "legacy":
            result = await client.call_tool("execute", add)
            assert "added fresh_one" in text_of(result), text_of(result)
            with anyio.fail_after(10):
                await changed.wait()
        else:
            async with client.listen(tools_list_changed=True) as subscription:
                result = await client.call_tool("execute", add)
                assert "added fresh_one" in text_of(result), text_of(result)
                with anyio.fail_after(10):
                    async for _event in subscription:
                        break
        ok("an upstream tools/list_changed reaches the host as tools/list_changed")
        after = (await client.list_tools()).tools
        assert "function freshOne(" in after[0].description, after[0].description
        result = await client.call_tool("execute", {"code": "return await dyn.freshOne()"})
        assert "dynamic: fresh_one" in text_of(result), text_of(result)
        ok("the new tool is in execute's description and callable")


async def main():
    await embedded_mode()
    await search_mode()
    await upstream_tools_change()
    print(f"all passed ({TRANSPORT}, {MODE})")


anyio.run(main)
