"""A faust-streaming app wired to imstream's topics, reading only committed records.

    app = streams_app("mentions", settings)
    timeline = timeline_topic(app, settings)

    @app.agent(timeline)
    async def watch(events):
        async for event in events:         # a records.TimelineEvent
            ...

imstream's stages write ``im.timeline``, ``im.sync``, ``im.inbox`` and the
sequencer's dead letters in Kafka transactions; a transaction that aborts (a
stage crashed or lost its partition mid-batch) leaves its records in the log,
to be written again by the next owner. faust-streaming 0.15.3 reads with
``isolation_level="read_uncommitted"`` unless the app runs its own
``exactly_once`` mode (transport/drivers/aiokafka.py: no setting), so a plain
faust app would see those records twice, or see records that never happened.
:func:`streams_app` gives an app whose consumer reads ``read_committed``: it sees
each committed record once, in order, and nothing of an aborted transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline.log.topics import TopicSpec, catalogue
from pipeline.model.events import limits_from
from pipeline.settings import Settings
from pipeline.streams import codecs

READ_COMMITTED = "read_committed"


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust passes isolation_level to the constructor only; aiokafka keeps it
        # here and hands it to its fetcher in start(), which has not run yet
        consumer._isolation_level = READ_COMMITTED
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ReadCommittedThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class ReadCommittedApp(faust.App):
    """A ``faust.App`` whose stream consumer reads ``read_committed``."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def streams_app(app_id: str, settings: Settings, **options: Any) -> faust.App:
    """A faust app (its own consumer group, ``app_id``) on this deployment's broker,
    with tables co-partitioned with the conversation topics, their changelogs
    replicated like imstream's topics, and its data under the stack directory.
    ``options`` are faust settings and win over these."""
    conf: dict[str, Any] = {
        "broker": [f"kafka://{host}" for host in settings.kafka.bootstrap.split(",")],
        "topic_partitions": settings.topics.conversation_partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        "datadir": str(Path(settings.stack.dir) / "faust" / app_id),
        "web_enabled": False,
        "consumer_auto_offset_reset": "earliest",
    }
    conf.update(options)
    Path(conf["datadir"]).parent.mkdir(parents=True, exist_ok=True)  # faust makes one level
    return ReadCommittedApp(app_id, **conf)


def _topic(app: faust.App, spec: TopicSpec, codec: Any = None) -> Any:
    return app.topic(
        spec.name,
        key_type=str,
        key_serializer="raw",
        value_type=None,
        value_serializer=codec if codec is not None else "raw",
        partitions=spec.partitions,
        internal=False,  # imstream creates and owns them; faust never declares them
    )


def timeline_topic(app: faust.App, settings: Settings) -> Any:
    """``im.timeline``: key the conversation id, value a records.TimelineEvent."""
    spec = catalogue(settings).timeline
    return _topic(app, spec, codecs.timeline_codec(limits_from(settings.pipeline)))


def messages_topic(app: faust.App, settings: Settings) -> Any:
    """``im.messages``: the commands producers publish (records.MessageSent etc.),
    before the sequencer has checked or ordered them; not transactional."""
    spec = catalogue(settings).messages
    return _topic(app, spec, codecs.command_codec(limits_from(settings.pipeline)))


def inbox_topic(app: faust.App, settings: Settings) -> Any:
    """``im.inbox``: key the user id, value a records.InboxEntry."""
    spec = catalogue(settings).inbox
    return _topic(app, spec, codecs.inbox_codec(limits_from(settings.pipeline)))


def dead_letter_topic(app: faust.App, settings: Settings) -> Any:
    """``im.deadletter``: the refused record's bytes as they were; why is in the
    event's headers (pipeline/log/deadletter.py)."""
    return _topic(app, catalogue(settings).dead_letter)
