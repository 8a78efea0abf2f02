"""The gateway: HTTP API, WebSocket push and presence for client devices."""
