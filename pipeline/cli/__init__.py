"""The command line: ``imstream <command>``.

The top of the tree and the only part of ``pipeline`` allowed to import
``agents``, ``infra`` and ``bench`` (it starts workers, gateways, the local
stack and the benchmarks). It owns argument parsing, the commands, and the
demo. Nothing imports it.
"""
