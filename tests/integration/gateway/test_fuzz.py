"""The HTTP API fuzzed from its own OpenAPI document by schemathesis, run as its users
run it (the ``st`` command) against a real gateway, worker, Kafka and ClickHouse.

Every check schemathesis has (``--checks all``): no 5xx; every status, header and
body as documented; schema-valid requests accepted and schema-violating ones
refused (tests/integration/gateway/schemathesis.toml lets 413 count as a refusal);
405 with ``Allow`` for undeclared methods. Every phase (examples, coverage,
fuzzing, stateful), at most ``MAX_EXAMPLES`` generated cases per operation.
``/v1/stream`` is left out: it is the WebSocket upgrade, which a fuzzer speaking
HTTP requests cannot complete; the WebSocket tests try it with a WebSocket client.

The suite fuzzes with a fixed seed, so that a run is reproducible and a landing is
not decided by which cases a random seed happens to draw. ``FUZZ_SEED=random``
draws new cases (``FUZZ_SEED=<n>`` replays a seed that schemathesis printed);
random runs of 30 cases per operation found the four bugs fixed with this
(an undeclared null ``next_before``, an empty ``client_msg_id`` accepted, the
``role`` entry kind missing from the document, a body limit stated 4x too low).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from pipeline.settings import Settings
from tests.support import gateway_process, running_worker, token

MAX_EXAMPLES = 10
SEED = os.environ.get("FUZZ_SEED", "20261201")
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")


async def test_the_api_holds_to_its_openapi_document(settings: Settings, tmp_path: Path) -> None:
    async with running_worker(settings), gateway_process(settings, tmp_path / "gw.log") as gw:
        bearer = token(gw.settings, "alice", "phone")
        run = await asyncio.to_thread(
            subprocess.run,
            [
                str(ST),
                "--no-color",
                "--config-file",
                str(CONFIG),
                "run",
                f"{gw.url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--exclude-path",
                "/v1/stream",
                "--header",
                f"Authorization: Bearer {bearer}",
                *([] if SEED == "random" else ["--seed", SEED]),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert " generated, " in run.stdout, report
    assert "failures" not in run.stdout.split("SUMMARY")[-1].lower(), report
