"""The benchmarks (``make bench``, ``python -m bench``): throughput, latency,
fan-out, reads and analytics against a raw Kafka copy loop measured in the same
run; results in ``bench/results/`` and ``BENCHMARKS.md``.

Not part of the wheel: it runs from a source checkout. May import anything but
``pipeline.cli``.
"""
