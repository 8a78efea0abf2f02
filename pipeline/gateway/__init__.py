"""The gateway: HTTP API, WebSocket push and presence for client devices.

Owns the aiohttp application (routes, OpenAPI document, error bodies), tokens,
the hub of connected devices, and the push receiver that follows its own push
topic and the large groups its users are in. May import everything below it:
``pipeline.sdk``, ``pipeline.read``, ``pipeline.store``, ``pipeline.log``,
``pipeline.model``, ``pipeline.settings``, ``pipeline.errors``; never
``agents``, ``infra``, ``bench`` or ``pipeline.ops``.
"""
