"""
Large messages against the real broker: a 64 MiB body round-trips intact
within three times its size of client memory, the broker's own size limit
is met exactly, and the client's inbound cap (C{max_message_size}) applies.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc

from twisted.python import log

from tests.integration.broker import BrokerTestCase, async_test, unique
from tests.integration.nodes import PrivateNode
from txamqp_next import errors

MiB = 1 << 20


class LargeMessageTests(BrokerTestCase):
    """
    Bodies much larger than a frame.
    """

    timeout = 120

    @async_test
    async def test_64_mib_round_trip(self) -> None:
        """
        A 64 MiB message is published (confirmed) and consumed intact while
        the client's memory peaks under 3 times the body.  The measure is
        tracemalloc's peak over the whole test, the body included: it counts
        every Python allocation of this process, exactly, whatever the
        allocator and the other processes on the machine do.
        """
        size = 64 * MiB
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue=unique("large"), exclusive=True)).queue
        await ch.confirm_select()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            body = os.urandom(size)
            digest = hashlib.sha256(body).digest()
            await ch.basic_publish(routing_key=queue, body=body)
            del body
            consumer = await ch.basic_consume(queue=queue, no_ack=True)
            message = await consumer.queue.get(timeout=60)
            received = len(message.body), hashlib.sha256(message.body).digest()
            del message
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        log.msg(f"64 MiB round trip: peak traced memory {peak / MiB:.1f} MiB")
        self.assertEqual(received, (size, digest))
        self.assertLess(peak, 3 * size, f"peak {peak / MiB:.1f} MiB")

    @async_test
    async def test_client_cap(self) -> None:
        """
        A message over the client's max_message_size closes its channel
        with ContentTooLarge (311); the connection and other channels go on.
        """
        client, ch = await self.channel(max_message_size=1000)
        other = await client.open_channel()
        big = (await ch.queue_declare(queue=unique("capped"), exclusive=True)).queue
        small = (await other.queue_declare(queue=unique("small"), exclusive=True)).queue
        await ch.basic_publish(routing_key=big, body=b"x" * 1001)
        await ch.basic_publish(routing_key=small, body=b"y" * 1000)
        failure = await self.assertFailure(ch.basic_get(queue=big), errors.ContentTooLarge)
        self.assertEqual(failure.reply_code, 311)
        message = await other.basic_get(queue=small, no_ack=True)
        assert message is not None
        self.assertEqual(message.body, b"y" * 1000)
        self.assertIsNone(client.closed)


class BrokerLimitTests(BrokerTestCase):
    """
    The broker's own limit, on a private node configured with
    C{max_message_size = 1048576} so the test stays small (RabbitMQ 3.10's
    default is 128 MiB, configurable up to 512 MiB).
    """

    timeout = 120

    @async_test
    async def test_at_and_over_the_limit(self) -> None:
        """
        A body of exactly the broker's limit round-trips intact; one byte
        more and the broker closes the channel with PRECONDITION_FAILED
        (406) and the publish's confirm fails; the connection lives on.
        """
        node = PrivateNode(config=["max_message_size = 1048576"])
        self.addCleanup(node.stop_in_thread)
        await node.start_in_thread()
        client = await self.connect(node.url)
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue=unique("limit"), exclusive=True)).queue
        await ch.confirm_select()
        body = os.urandom(MiB)
        await ch.basic_publish(routing_key=queue, body=body)
        message = await ch.basic_get(queue=queue, no_ack=True)
        assert message is not None
        self.assertEqual(message.body, body)
        too_big = ch.basic_publish(routing_key=queue, body=body + b"!")
        failure = await self.assertFailure(too_big, errors.PreconditionFailed)
        self.assertEqual(failure.reply_code, 406)
        self.assertIn("max", failure.reply_text)
        again = await client.open_channel()
        await again.queue_declare(queue=unique("after"), exclusive=True)
