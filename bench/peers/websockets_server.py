"""The tutorial's Python server: `websockets`, a set of connected clients, and a for loop.

Every message received is sent to every connected client, one `await client.send()` after
another. No auth, no storage. Only the port comes from the environment (PORT).
"""

import asyncio
import os

from websockets.asyncio.server import serve

connected_clients = set()


async def handler(websocket):
    connected_clients.add(websocket)
    try:
        async for message in websocket:
            for client in connected_clients:
                await client.send(message)
    finally:
        connected_clients.remove(websocket)


async def main():
    async with serve(handler, "127.0.0.1", int(os.environ.get("PORT", "8765"))) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
