"""A small upstream MCP server (Python SDK) whose tool list changes at run time.

Tools: `add_tool {name}` adds a tool called `name` (answering `dynamic: <name>`) and sends
`notifications/tools/list_changed`.
"""

import sys

try:
    from mcp.server.mcpserver import Context, MCPServer
except ImportError as e:  # pragma: no cover
    print(f"the Python MCP SDK is missing ({e}): pip install mcp", file=sys.stderr)
    sys.exit(3)

server = MCPServer("dynamic")


@server.tool()
async def add_tool(name: str, ctx: Context) -> str:
    """Add a tool called `name` and notify the client."""
    server.add_tool(lambda: f"dynamic: {name}", name=name, description=f"Added at run time: {name}.")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


if __name__ == "__main__":
    server.run()
