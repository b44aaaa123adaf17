"""A real MCP server on loopback for tests/it/mcp.rs, with the Python `mcp` package (its
MCPServer, formerly FastMCP, over streamable HTTP).

    mcp_tools_server.py PORT CALLS_FILE

Tools: `lookup` (declared as an action by the test), `wipe` (never declared: it must never
be offered to a model), `fail` (answers with isError). Every call of `lookup` appends a line
to CALLS_FILE, so the test counts how many times it really ran."""

import sys

from mcp.server.mcpserver import MCPServer

port = int(sys.argv[1])
calls_file = sys.argv[2]

server = MCPServer("test-docs")


@server.tool()
def lookup(topic: str) -> str:
    """Look a topic up in the docs."""
    with open(calls_file, "a") as calls:
        calls.write(topic + "\n")
    return f"docs on {topic}: read the manual, chapter 7"


@server.tool()
def wipe(everything: bool) -> str:
    """Delete every document."""
    return "wiped"


@server.tool()
def fail(topic: str) -> str:
    """Always fails."""
    raise ValueError(f"no docs on {topic}")


server.run("streamable-http", host="127.0.0.1", port=port, stateless_http=True, json_response=True)
