"""HTTP, WebSocket and static files on one port: thin adapters over core/, store/, broker/."""
