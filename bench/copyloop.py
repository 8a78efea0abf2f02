"""The baseline: a raw aiokafka consume -> produce copy loop, the ceiling for any
Python stage on this broker.

    python -m bench.copyloop --mode plain|transactional SOURCE SINK GROUP RECORDS

Settings come from the environment like a worker's. Both modes use the
project's Kafka clients and batch settings (``pipeline.log.kafka``,
``PIPELINE_BATCH_*``) as the pipeline's stages do:

* plain: a batch is sent (acks=all, idempotent), then its offsets committed,
  like the ClickHouse sinks;
* transactional: like ``agents.runtime.transactional``: one transactional producer per
  input partition, each partition's batch one transaction holding its output
  and its offset commit (no state, no decoding: nothing but the copy).

It copies RECORDS records, then prints one JSON line (and exits when its
stdin closes): how many it copied, the
seconds from the first batch received to the last one committed, and the CPU
seconds it used in between.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from pipeline.log import kafka
from pipeline.settings import Settings

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
ASSIGNMENT_TIMEOUT_S = 60.0


class CopyLoop:
    def __init__(self, settings: Settings, mode: str, source: str, sink: str, group: str) -> None:
        self.settings = settings
        self.mode = mode
        self.sink = sink
        self.group = group
        self.source = source
        self.plain: AIOKafkaProducer | None = None
        self.transactional: dict[TopicPartition, AIOKafkaProducer] = {}

    async def run(self, records: int) -> dict[str, Any]:
        self.consumer = kafka.consumer(
            self.settings,
            self.source,
            group_id=self.group,
            max_poll_records=self.settings.pipeline.batch_max_records,
        )
        await self.consumer.start()
        try:
            if self.mode == "transactional":
                await self._open_transactional()
            else:
                self.plain = kafka.producer(self.settings)
                await self.plain.start()
            return await self._loop(records)
        finally:
            await self.consumer.stop()
            for producer in [self.plain, *self.transactional.values()]:
                if producer is not None:
                    await producer.stop()

    async def _open_transactional(self) -> None:
        deadline = time.monotonic() + ASSIGNMENT_TIMEOUT_S
        while not self.consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError("the copy loop got no partitions")
            await asyncio.sleep(0.1)
        for tp in self.consumer.assignment():
            producer = kafka.transactional_producer(
                self.settings, f"{self.group}.{tp.topic}.{tp.partition}"
            )
            await producer.start()
            self.transactional[tp] = producer

    async def _loop(self, records: int) -> dict[str, Any]:
        copied = batches = 0
        first = cpu_first = 0.0
        while copied < records:
            batch: Batch = await self.consumer.getmany(
                timeout_ms=200, max_records=self.settings.pipeline.batch_max_records
            )
            if not batch:
                continue
            if not first:
                first, cpu_first = time.monotonic(), time.process_time()
            if self.plain is None:
                await asyncio.gather(*(self._transaction(tp, recs) for tp, recs in batch.items()))
            else:
                await self._send_all(self.plain, [r for recs in batch.values() for r in recs])
                await self.consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items()})
            copied += sum(len(recs) for recs in batch.values())
            batches += 1
        return {
            "mode": self.mode,
            "copied": copied,
            "batches": batches,
            "elapsed_s": time.monotonic() - first,
            "cpu_s": time.process_time() - cpu_first,
        }

    async def _send_all(
        self, producer: AIOKafkaProducer, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        futures = [await producer.send(self.sink, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)

    async def _transaction(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        producer = self.transactional[tp]
        await producer.begin_transaction()
        await self._send_all(producer, records)
        await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, self.group)
        await producer.commit_transaction()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.copyloop", description=__doc__)
    parser.add_argument("--mode", choices=("plain", "transactional"), required=True)
    parser.add_argument("source")
    parser.add_argument("sink")
    parser.add_argument("group")
    parser.add_argument("records", type=int)
    args = parser.parse_args(argv)
    loop = CopyLoop(Settings.from_env(), args.mode, args.source, args.sink, args.group)
    result = asyncio.run(loop.run(args.records))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # the bench reads this process's CPU and memory before it goes
    return 0


if __name__ == "__main__":
    sys.exit(main())
