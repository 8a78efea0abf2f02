"""The stages' commit cycle depends on one aiokafka constant: check it is still
there and still used, so that an aiokafka upgrade that changes it is noticed."""

from __future__ import annotations

import inspect
from dataclasses import replace

from aiokafka.producer import sender

from pipeline.log import kafka
from pipeline.settings import Settings


async def test_the_retry_after_concurrent_transactions_is_ours_to_set() -> None:
    handler = inspect.getsource(sender.AddPartitionsToTxnHandler.handle_response)
    assert "return BACKOFF_OVERRIDE" in handler
    settings = Settings()
    settings = settings.replace(kafka=replace(settings.kafka, txn_retry_backoff_ms=3.0))
    kafka.transactional_producer(settings, "t")
    assert sender.BACKOFF_OVERRIDE == 0.003
