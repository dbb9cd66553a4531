# -*- test-case-name: tests.integration.test_channel -*-
"""
The channel API against the real broker: calls, publishing, consuming in its
three forms, acknowledgements, QoS, transactions and broker errors.
"""

from __future__ import annotations

import datetime
import hashlib
import os

from twisted.internet import defer

from tests.integration.broker import BrokerTestCase, async_test, sleep, unique
from txamqp_next import errors
from txamqp_next.content import Content
from txamqp_next.message import Message
from txamqp_next.queue import Empty


class CallTests(BrokerTestCase):
    """
    Calls return Deferreds firing with replies; many may be outstanding.
    """

    @async_test
    async def test_many_outstanding_across_channels(self) -> None:
        """
        600 declarations in flight at once over three channels all succeed,
        each channel's replies in call order.
        """
        client = await self.connect()
        channels = [await client.open_channel() for _ in range(3)]
        names = [[unique(f"c{c}-{i}") for i in range(200)] for c in range(3)]
        calls = [
            ch.queue_declare(queue=name, exclusive=True)
            for ch, chan_names in zip(channels, names, strict=True)
            for name in chan_names
        ]
        replies = await defer.gatherResults(calls)
        self.assertEqual([r.queue for r in replies], [n for chan in names for n in chan])

    @async_test
    async def test_no_wait(self) -> None:
        """
        A declaration with no_wait fires with None at once, and the queue
        exists afterwards.
        """
        _, ch = await self.channel()
        queue = unique("nowait")
        self.assertIsNone(await ch.queue_declare(queue=queue, exclusive=True, no_wait=True))
        ok = await ch.queue_declare(queue=queue, passive=True)
        self.assertEqual(ok.queue, queue)

    @async_test
    async def test_unknown_argument(self) -> None:
        """
        A misspelt keyword raises TypeError naming the valid ones.
        """
        _, ch = await self.channel()
        error = self.assertRaises(TypeError, ch.queue_declare, queue="q", durabel=True)
        self.assertIn("durable", str(error))


class ErrorTests(BrokerTestCase):
    """
    A broker error closes its channel only.
    """

    @async_test
    async def test_error_fails_queued_calls(self) -> None:
        """
        A passive declaration of a missing queue fails with NotFound, and so
        do the calls queued behind it; another channel works, a new channel
        opens, and later calls on the dead channel fail at once.
        """
        client, ch = await self.channel()
        other = await client.open_channel()
        missing = ch.queue_declare(queue=unique("missing"), passive=True)
        queued = ch.queue_declare(queue=unique("after"), exclusive=True)
        await self.assertFailure(missing, errors.NotFound)
        await self.assertFailure(queued, errors.NotFound)
        self.assertIsInstance(ch.closed, errors.NotFound)
        await other.queue_declare(queue="", exclusive=True)
        fresh = await client.open_channel()
        await fresh.queue_declare(queue="", exclusive=True)
        await self.assertFailure(ch.queue_declare(queue="", exclusive=True), errors.NotFound)

    @async_test
    async def test_precondition_failed(self) -> None:
        """
        Redeclaring a queue with other arguments fails with
        PreconditionFailed.
        """
        _, ch = await self.channel()
        queue = unique("pre")
        await ch.queue_declare(queue=queue, exclusive=True, arguments={"x-max-length": 5})
        error = await self.assertFailure(
            ch.queue_declare(queue=queue, exclusive=True, arguments={"x-max-length": 6}),
            errors.PreconditionFailed,
        )
        self.assertEqual(error.reply_code, 406)

    @async_test
    async def test_resource_locked(self) -> None:
        """
        Using another connection's exclusive queue fails with ResourceLocked.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        _, intruder = await self.channel()
        await self.assertFailure(intruder.basic_consume(queue=queue), errors.ResourceLocked)

    @async_test
    async def test_channel_close(self) -> None:
        """
        channel_close() is clean, and later calls fail with ChannelClosed.
        """
        _, ch = await self.channel()
        ok = await ch.channel_close()
        self.assertEqual(ok.NAME, "channel.close-ok")
        await self.assertFailure(ch.queue_declare(queue=""), errors.ChannelClosed)


class PublishTests(BrokerTestCase):
    """
    Bodies and properties round-trip intact.
    """

    @async_test
    async def test_properties_and_bodies(self) -> None:
        """
        Every property and a body of arbitrary bytes, including a 1 MiB one
        split over frames, come back as sent.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        when = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
        properties = {
            "content_type": "application/octet-stream",
            "content_encoding": "identity",
            "headers": {
                "nested": {"a": [1, "two", True, None]},
                "bytes": b"\xff\x00",
                "big": 2**40,
                "when": when,
            },
            "delivery_mode": 2,
            "priority": 3,
            "correlation_id": "corr",
            "reply_to": "replies",
            "expiration": "60000",
            "message_id": "id-1",
            "timestamp": 1_700_000_000,
            "type": "kind",
            "user_id": "guest",
            "app_id": "tests",
        }
        bodies = [b"", b"\x00\xff\xfe not utf-8", os.urandom(1024 * 1024)]
        for body in bodies:
            await ch.basic_publish(routing_key=queue, body=body, properties=properties)
        for body in bodies:
            message = await ch.basic_get(queue=queue, no_ack=True)
            assert message is not None
            self.assertEqual(hashlib.sha256(message.body).digest(), hashlib.sha256(body).digest())
            got = {k: v for k, v in message.properties.items() if v is not None}
            self.assertEqual(got, properties)
        self.assertIsNone(await ch.basic_get(queue=queue))


class ConsumeTests(BrokerTestCase):
    """
    Consuming with a callback, an async iterator or txAMQP's queue.
    """

    async def filled(self, count: int) -> tuple[object, str]:
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        for i in range(count):
            await ch.basic_publish(routing_key=queue, body=b"%d" % i)
        return ch, queue

    @async_test
    async def test_callback(self) -> None:
        """
        A callback gets every message in order and acks them.
        """
        ch, queue = await self.filled(5)
        got: list[bytes] = []
        done: defer.Deferred[None] = defer.Deferred()

        def handle(message: Message) -> None:
            got.append(message.body)
            message.ack()
            if len(got) == 5:
                done.callback(None)

        await ch.basic_consume(queue=queue, callback=handle)  # type: ignore[attr-defined]
        await done
        self.assertEqual(got, [b"0", b"1", b"2", b"3", b"4"])

    @async_test
    async def test_async_iterator(self) -> None:
        """
        async for reads messages; the loop ends when the consumer is
        cancelled.
        """
        ch, queue = await self.filled(3)
        consumer = await ch.basic_consume(queue=queue, no_ack=True)  # type: ignore[attr-defined]
        got = []
        async for message in consumer:
            got.append(message.body)
            if len(got) == 3:
                await consumer.cancel()
        self.assertEqual(got, [b"0", b"1", b"2"])

    @async_test
    async def test_txamqp_queue(self) -> None:
        """
        client.queue(tag).get(timeout=...) reads a tag's deliveries and fails
        with Empty when none come.  That queue is txAMQP's: it belongs to
        the txAMQP-style client (L{AMQClient}) and its channels.
        """
        client = await self.connect_txamqp()
        ch = await client.channel(1)
        await ch.channel_open()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        await ch.basic_consume(queue=queue, consumer_tag="tag-1", no_ack=True)
        await ch.basic_publish(routing_key=queue, content=Content(b"hello"))
        q = await client.queue("tag-1")
        self.assertEqual((await q.get(timeout=5)).content.body, b"hello")
        await self.assertFailure(q.get(timeout=0.2), Empty)

    @async_test
    async def test_nack_reject(self) -> None:
        """
        nack(requeue=True) redelivers with redelivered set; reject(requeue=
        False) drops the message.
        """
        ch, queue = await self.filled(1)
        consumer = await ch.basic_consume(queue=queue)  # type: ignore[attr-defined]
        first = await consumer.queue.get(timeout=5)
        await first.nack(requeue=True)
        again = await consumer.queue.get(timeout=5)
        self.assertTrue(again.redelivered)
        await again.reject(requeue=False)
        await consumer.cancel()
        ok = await ch.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
        self.assertEqual(ok.message_count, 0)

    @async_test
    async def test_qos_limits_unacked(self) -> None:
        """
        basic_qos(prefetch_count=3) delivers at most 3 unacked messages.
        """
        ch, queue = await self.filled(10)
        await ch.basic_qos(prefetch_count=3)  # type: ignore[attr-defined]
        consumer = await ch.basic_consume(queue=queue)  # type: ignore[attr-defined]
        await sleep(0.3)
        self.assertEqual(len(consumer.queue), 3)
        (await consumer.queue.get()).ack()
        await sleep(0.2)
        self.assertEqual(len(consumer.queue), 3)


class TransactionTests(BrokerTestCase):
    """
    tx_select, tx_commit and tx_rollback.
    """

    @async_test
    async def test_rollback_and_commit(self) -> None:
        """
        A rolled back publish is never delivered; a committed one is.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        await ch.tx_select()
        await ch.basic_publish(routing_key=queue, body=b"rolled back")
        await ch.tx_rollback()
        self.assertIsNone(await ch.basic_get(queue=queue))
        await ch.basic_publish(routing_key=queue, body=b"committed")
        await ch.tx_commit()
        message = await ch.basic_get(queue=queue, no_ack=True)
        assert message is not None
        self.assertEqual(message.body, b"committed")
