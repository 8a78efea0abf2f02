"""Observability: what a running imstream says about itself.

Owns the sensor interface every component reports through (``sensor``: a
no-op base for processes whose metrics are off, ``prometheus``: the Prometheus
sensor behind each process's ``/metrics``), the cheap latency histograms that
per-record observations need, reading a ``/metrics`` page back (``scrape``,
for ``imstream status``), and logging set-up (text or JSON, a quiet start).
May import: ``pipeline.model``, ``pipeline.settings``, ``pipeline.errors``.
"""
