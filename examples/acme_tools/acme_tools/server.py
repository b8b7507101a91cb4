from mcp.server.mcpserver import MCPServer

from acme_tools.numerals import numeral

mcp = MCPServer("acme-tools")


@mcp.tool()
async def to_roman(number: int) -> str:
    """The number in Roman numerals."""
    return numeral(number)
