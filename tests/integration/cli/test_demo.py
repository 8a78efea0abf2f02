"""``imstream demo``, the README's main command, run as a real process."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.cli.live_demo import DEMO_APP_ID
from pipeline.log import kafka
from pipeline.settings import Settings
from tests.support import imstream


async def test_the_demo_runs_and_the_live_views_agree_with_clickhouse(settings: Settings) -> None:
    try:
        result = imstream(settings, "demo", timeout=300)
    finally:
        group = settings.topics.prefix + DEMO_APP_ID
        shutil.rmtree(Path(settings.stack.dir) / "faust" / group, ignore_errors=True)
        async with kafka.admin(settings) as client:
            leftovers = [t for t in await client.list_topics() if t.startswith(group)]
        await kafka.delete_topics(settings, leftovers)
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "history of team-" in out
    assert "the tablet pulled 3" in out
    # carol read up to 2 and sent 4: only alice's 5 is unread (docs/read-state.md)
    assert "1 unread (read up to 2, own last message 4)" in out
    live = out.split("and ClickHouse's minute rollup:", 1)[1].splitlines()[2:]
    assert live, out[-2000:]
    assert all(line.rstrip().endswith(" same") for line in live if line.strip()), out[-2000:]
    # 10 messages: 2 in the 1:1, 5 in the group (a retried send is one), 3 pushed
    assert sum(int(line.split()[3]) for line in live if line.strip()) == 10
