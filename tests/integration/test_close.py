# -*- test-case-name: tests.integration.test_close -*-
"""
Closing and losing connections against the real broker: nothing waits for
ever.
"""

from __future__ import annotations

import subprocess

from tests.integration.broker import BrokerTestCase, async_test, sleep, unique
from txamqp_next import errors


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode:
        raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


class CloseTests(BrokerTestCase):
    """
    Clean closes, broker closes and lost transports.
    """

    @async_test
    async def test_clean_close(self) -> None:
        """
        close() waits for close-ok; afterwards every call fails at once with
        ConnectionClosed.
        """
        client, ch = await self.channel()
        await client.close()
        self.assertIsInstance(client.closed, errors.ConnectionClosed)
        self.assertEqual(client.closed.reply_code, 200)  # type: ignore[union-attr]
        await self.assertFailure(ch.queue_declare(queue=""), errors.ConnectionClosed)
        await self.assertFailure(client.open_channel(), errors.ConnectionClosed)
        await client.when_closed()

    @async_test
    async def test_lost_transport_fails_everything(self) -> None:
        """
        Aborting the transport fails the outstanding calls on every channel
        at once, and later calls immediately.
        """
        client = await self.connect()
        one, two = await client.open_channel(), await client.open_channel()
        queue = (await one.queue_declare(queue="", exclusive=True)).queue
        pending = [
            one.queue_declare(queue=queue, passive=True),
            two.basic_consume(queue=queue),
            two.queue_declare(queue="", exclusive=True),
        ]
        client.transport.abortConnection()  # type: ignore[union-attr]
        for d in pending:
            await self.assertFailure(d, errors.ConnectionClosed)
        await self.assertFailure(one.basic_publish(body=b"x"), errors.ConnectionClosed)

    @async_test
    async def test_closed_by_operator(self) -> None:
        """
        A connection an operator closes (rabbitmqctl close_connection) fails
        every outstanding call with ConnectionForced.
        """
        name = unique("forced")
        client = await self.connect(connection_name=name)
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        consumer = await ch.basic_consume(queue=queue)
        pids = []
        for _ in range(50):
            listing = rabbitmqctl("list_connections", "client_properties", "pid")
            pids = [line.rsplit("\t", 1)[1] for line in listing.splitlines() if name in line]
            if pids:
                break
            await sleep(0.1)
        self.assertTrue(pids, "the broker does not list the connection")
        getting = consumer.queue.get()
        rabbitmqctl("close_connection", pids[0], "closed by test")
        reason = await consumer.when_ended()
        self.assertIsInstance(reason, errors.ConnectionForced)
        await self.assertFailure(getting, Exception)
        self.assertIsInstance(client.closed, errors.ConnectionForced)
        self.assertIn("closed by test", client.closed.reply_text)  # type: ignore[union-attr]
