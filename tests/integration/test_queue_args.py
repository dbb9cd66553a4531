"""
RabbitMQ queue arguments and acknowledgement variants the broker must
honour: quorum queues, streams, TTL, max-length, and basic_nack with
multiple and requeue.
"""

from __future__ import annotations

from twisted.internet import defer

from tests.integration.broker import BrokerTestCase, async_test, sleep, unique
from txamqp_next import errors
from txamqp_next.channel import Channel


async def bodies(ch: Channel, queue: str) -> list[bytes]:
    out = []
    while True:
        message = await ch.basic_get(queue=queue, no_ack=True)
        if message is None:
            return out
        out.append(message.body)


class QueueArgumentTests(BrokerTestCase):
    """
    C{queue_declare(arguments=...)} reaches the broker intact.
    """

    async def durable(self, ch: Channel, prefix: str, arguments: dict[str, object]) -> str:
        """
        Declare a durable queue (quorum queues and streams must be) and
        delete it after the test.
        """
        queue = unique(prefix)
        await ch.queue_declare(queue=queue, durable=True, arguments=arguments)
        self.addCleanup(lambda: ch.queue_delete(queue=queue))
        return queue

    @async_test
    async def test_quorum_queue(self) -> None:
        """
        A quorum queue takes confirmed publishes, and a message nacked with
        requeue comes back with the x-delivery-count header quorum queues
        add.
        """
        client, ch = await self.channel()
        queue = await self.durable(ch, "quorum", {"x-queue-type": "quorum"})
        await ch.confirm_select()
        await ch.basic_publish(routing_key=queue, body=b"q")
        first = await ch.basic_get(queue=queue)
        assert first is not None
        self.assertEqual(first.headers.get("x-delivery-count", 0), 0)
        await first.nack(requeue=True)
        again = await ch.basic_get(queue=queue, no_ack=True)
        assert again is not None
        self.assertTrue(again.redelivered)
        self.assertEqual(again.headers["x-delivery-count"], 1)
        # a classic-only argument is refused by a quorum queue
        other = await client.open_channel()
        refused = other.queue_declare(
            queue=unique("quorum-bad"),
            durable=True,
            arguments={"x-queue-type": "quorum", "x-max-priority": 5},
        )
        failure = await self.assertFailure(refused, errors.PreconditionFailed)
        self.assertIn("x-max-priority", failure.reply_text)

    @async_test
    async def test_stream(self) -> None:
        """
        A stream keeps its messages: two consumers with x-stream-offset
        "first" (prefetch and manual acks, as streams require) each read
        everything, with the x-stream-offset of each message.
        """
        _, ch = await self.channel()
        queue = await self.durable(ch, "stream", {"x-queue-type": "stream"})
        await ch.confirm_select()
        await defer.gatherResults(
            [ch.basic_publish(routing_key=queue, body=b"%d" % i) for i in range(5)]
        )
        await ch.basic_qos(prefetch_count=10)
        for _ in range(2):
            consumer = await ch.basic_consume(queue=queue, arguments={"x-stream-offset": "first"})
            seen = []
            for _ in range(5):
                message = await consumer.queue.get(timeout=10)
                seen.append((message.body, message.headers["x-stream-offset"]))
                await message.ack()
            await consumer.cancel()
            self.assertEqual([body for body, _ in seen], [b"%d" % i for i in range(5)])
            offsets = [offset for _, offset in seen]
            self.assertEqual(offsets, sorted(offsets))

    @async_test
    async def test_message_ttl(self) -> None:
        """
        x-message-ttl expires messages in the queue; the expiration property
        expires a single message sooner.
        """
        _, ch = await self.channel()
        queue = unique("ttl")
        await ch.queue_declare(queue=queue, exclusive=True, arguments={"x-message-ttl": 300})
        await ch.basic_publish(routing_key=queue, body=b"short", properties={"expiration": "50"})
        await ch.basic_publish(routing_key=queue, body=b"long")
        await sleep(0.15)
        ok = await ch.queue_declare(queue=queue, passive=True)
        self.assertEqual(ok.message_count, 1)
        await sleep(0.4)
        self.assertEqual(await bodies(ch, queue), [])

    @async_test
    async def test_max_length(self) -> None:
        """
        x-max-length 3 keeps the newest three (the oldest are dropped).
        """
        _, ch = await self.channel()
        queue = unique("maxlen")
        await ch.queue_declare(queue=queue, exclusive=True, arguments={"x-max-length": 3})
        await ch.confirm_select()
        await defer.gatherResults(
            [ch.basic_publish(routing_key=queue, body=b"%d" % i) for i in range(5)]
        )
        self.assertEqual(await bodies(ch, queue), [b"2", b"3", b"4"])


class NackTests(BrokerTestCase):
    """
    C{basic_nack} with C{multiple} and C{requeue}.
    """

    @async_test
    async def test_nack_multiple(self) -> None:
        """
        nack(multiple=True, requeue=True) on the third of five deliveries
        requeues the first three; nack(multiple=True, requeue=False) on the
        last drops everything still unacked.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue=unique("nack"), exclusive=True)).queue
        for i in range(5):
            await ch.basic_publish(routing_key=queue, body=b"%d" % i)
        consumer = await ch.basic_consume(queue=queue)
        got = [await consumer.queue.get(timeout=5) for _ in range(5)]
        self.assertEqual([m.body for m in got], [b"0", b"1", b"2", b"3", b"4"])
        await ch.basic_nack(delivery_tag=got[2].delivery_tag, multiple=True, requeue=True)
        again = [await consumer.queue.get(timeout=5) for _ in range(3)]
        self.assertEqual([m.body for m in again], [b"0", b"1", b"2"])
        self.assertTrue(all(m.redelivered for m in again))
        await ch.basic_nack(delivery_tag=again[-1].delivery_tag, multiple=True, requeue=False)
        await consumer.cancel()
        ok = await ch.queue_declare(queue=queue, passive=True)
        self.assertEqual((ok.message_count, len(consumer.queue)), (0, 0))
