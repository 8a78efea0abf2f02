"""Notify a webhook when a message mentions a keyword: a faust-streaming agent that
reads imstream's timeline (docs/stream-consumers.md walks through it).

    KEYWORDS=urgent,outage WEBHOOK_URL=http://127.0.0.1:9999/hook \\
        python docs/examples/keyword_webhook.py worker -l info

It reads ``im.timeline`` of the deployment that the ``IMSTREAM_*`` settings name,
in its own consumer group (``keyword-webhook``, after the topic prefix), from
the start of the log the first time and from its committed offsets after that.
For each message whose body has one of the keywords as a word (any case), it
POSTs one JSON object to the webhook::

    {"event_id": ..., "conversation_id": ..., "seq": ..., "sender_id": ...,
     "keywords": ["outage"], "body": ..., "ts_ms": ...}

Delivery is at least once: after a crash the messages since the last commit are
posted again, so the receiver keeps ``event_id`` (the same on every copy) to
drop repeats. While the webhook does not answer 2xx, the agent retries with
backoff and goes no further: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import aiohttp

from pipeline.settings import Settings
from pipeline.streams.app import streams_app, timeline_topic
from pipeline.streams.records import MessageSent, TimelineEvent

settings = Settings.from_env()
KEYWORDS = [w.strip().lower() for w in os.environ.get("KEYWORDS", "urgent").split(",") if w]
WEBHOOK_URL = os.environ.get("WEBHOOK_URL", "http://127.0.0.1:9999/hook")
WORDS = re.compile(r"\w+")

app = streams_app(settings.topics.prefix + "keyword-webhook", settings)
timeline = timeline_topic(app, settings)


def mentioned(body: str) -> list[str]:
    """The keywords that ``body`` has as words, in the order of KEYWORDS."""
    words = {w.lower() for w in WORDS.findall(body)}
    return [k for k in KEYWORDS if k in words]


def notice(event: TimelineEvent, keywords: list[str]) -> dict[str, Any]:
    command: MessageSent = event.command
    return {
        "event_id": command.event_id,
        "conversation_id": command.conversation_id,
        "seq": event.seq,
        "sender_id": command.sender_id,
        "keywords": keywords,
        "body": command.body,
        "ts_ms": event.ts_ms,
    }


async def post(http: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
    delay = 0.5
    while True:
        try:
            async with http.post(WEBHOOK_URL, json=payload) as answer:
                if answer.status < 300:
                    return
                reason = f"answered {answer.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = repr(exc)
        app.log.warning("webhook %s; again in %.1fs", reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


@app.agent(timeline)
async def keyword_mentions(events: Any) -> None:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async for event in events:  # records.TimelineEvent, committed ones only
            if not isinstance(event.command, MessageSent):
                continue  # joins, leaves, creations
            keywords = mentioned(event.command.body)
            if keywords:
                await post(http, notice(event, keywords))


if __name__ == "__main__":
    app.main()
