"""The official Python MCP SDK client as a host that asks its user: `isola mcp` asks to approve a
destructive call with an elicitation form; the "user" (this callback) approves the first call and
denies the second with a reason.

Usage: elicit_test.py ISOLA PROJECT_DIR   (legacy handshake over stdio: the 2026-07-28 protocol
forbids server-to-client requests). Prints `all passed` at the end; any failure raises.
"""

import os
import sys

try:
    import anyio
    from mcp import Client, StdioServerParameters, types
except ImportError as e:  # pragma: no cover
    print(f"the Python MCP SDK is missing ({e}): pip install mcp", file=sys.stderr)
    sys.exit(3)

ISOLA, PROJECT = sys.argv[1:3]
DATA = os.path.join(PROJECT, "data")
asked = []


async def the_user(context, params):
    asked.append(params.message)
    assert "approve" in params.requested_schema["properties"], params.requested_schema
    if len(asked) == 1:
        return types.ElicitResult(action="accept", content={"approve": True})
    return types.ElicitResult(action="accept", content={"approve": False, "reason": "not that one"})


SCRIPT = f"""
await fs.writeFile({{ path: "{DATA}/yes.txt", content: "approved" }});
let second = "written";
try {{
  await fs.writeFile({{ path: "{DATA}/no.txt", content: "denied" }});
}} catch (e) {{
  second = e.name + ": " + e.message;
}}
return second;
"""


async def main():
    store = os.environ.get("XDG_DATA_HOME")
    params = StdioServerParameters(
        command=ISOLA,
        args=["mcp", "--config", os.path.join(PROJECT, "isola.json")],
        cwd=PROJECT,
        env={"XDG_DATA_HOME": store} if store else None,
    )
    async with Client(params, mode="legacy", elicitation_callback=the_user) as client:
        with anyio.fail_after(60):
            result = await client.call_tool("execute", {"code": SCRIPT})
    text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
    assert not result.is_error, text
    assert len(asked) == 2, asked
    assert "fs.writeFile" in asked[0] and "yes.txt" in asked[0], asked[0]
    assert open(os.path.join(DATA, "yes.txt")).read() == "approved"
    assert not os.path.exists(os.path.join(DATA, "no.txt"))
    second = result.structured_content["result"]
    assert second.startswith("ApprovalDenied: ") and "not that one" in second, second
    print("all passed", flush=True)


anyio.run(main)
