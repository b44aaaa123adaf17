"""An independent MCP client (the Python `mcp` package) driving chatgptd's /mcp, for
tests/it/mcp.rs.

    mcp_client.py URL TOKEN

Prints one JSON object: the tools listed, ask_agent's answer, search_memory's result, and
whether a request without a token was refused."""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

url, token = sys.argv[1], sys.argv[2]


def text_of(result):
    return "\n".join(block.text for block in result.content if getattr(block, "text", None) is not None)


async def main():
    out = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            tools = await client.list_tools()
            out["tools"] = sorted(tool.name for tool in tools.tools)
            asked = await client.call_tool(
                "ask_agent", {"agent": "wanderweave", "message": "A weekend in Lisbon, on foot", "timeout_ms": 60000}
            )
            out["ask"] = {"is_error": bool(asked.is_error), "text": text_of(asked)}
            searched = await client.call_tool("search_memory", {"query": "Lisbon"})
            out["search"] = {"is_error": bool(searched.is_error), "text": text_of(searched)}
    async with httpx2.AsyncClient(timeout=10) as http:
        try:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                await client.list_tools()
            out["without_token"] = "accepted"
        except BaseException as err:  # the SDK raises an exception group on a 401
            out["without_token"] = "refused: " + type(err).__name__
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                   headers={"Accept": "application/json, text/event-stream"})
        out["without_token_status"] = response.status_code
    print(json.dumps(out))


asyncio.run(main())
