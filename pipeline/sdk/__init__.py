"""Clients of imstream: the producer SDK and the device-side clients.

Owns the producer (commands to ``im.messages``, acknowledged once durable), the
HTTP API client, and the reference sync client (pull, push, gap, pull, ack) with
its reader of large groups. May import: ``pipeline.log``, ``pipeline.model``,
``pipeline.settings``, ``pipeline.errors``.
"""
