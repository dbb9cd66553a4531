"""
Fault tests on a private RabbitMQ node: a broker that shuts down or dies
under a connected client.
"""

from __future__ import annotations

from twisted.internet import defer

from tests.integration.broker import BrokerTestCase, async_test
from tests.integration.nodes import PrivateNode
from txamqp_next import errors


class PrivateNodeTests(BrokerTestCase):
    """
    Each test starts its own node, so it may stop or kill it.
    """

    timeout = 120

    async def private_node(self) -> PrivateNode:
        node = PrivateNode()
        self.addCleanup(node.stop_in_thread)
        await node.start_in_thread()
        return node

    @async_test
    async def test_broker_shutdown(self) -> None:
        """
        A broker that shuts down closes the connection with 320
        (connection-forced): every outstanding call and consumer fails with
        ConnectionForced, later calls fail at once.
        """
        node = await self.private_node()
        client = await self.connect(node.url)
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        consumer = await ch.basic_consume(queue=queue)
        getting = consumer.queue.get()
        await node.ctl_in_thread("stop_app")
        reason = await consumer.when_ended()
        self.assertIsInstance(reason, errors.ConnectionForced)
        self.assertEqual(reason.reply_code, 320)  # type: ignore[attr-defined]
        await self.assertFailure(getting, Exception)
        await client.when_closed()
        await self.assertFailure(ch.queue_declare(queue=queue, passive=True), errors.Closed)

    @async_test
    async def test_broker_killed(self) -> None:
        """
        A broker process that dies (no close frame, the socket just ends)
        fails every outstanding call on every channel with ConnectionClosed
        at once; nothing waits for ever.
        """
        node = await self.private_node()
        client = await self.connect(node.url)
        one, two = await client.open_channel(), await client.open_channel()
        queue = (await one.queue_declare(queue="", exclusive=True)).queue
        consumer = await two.basic_consume(queue=queue)
        await one.confirm_select()
        node.kill()
        results = await defer.DeferredList(
            [one.basic_publish(routing_key=queue, body=b"lost?"), consumer.when_ended()],
            consumeErrors=True,
        )
        published, ended = results
        self.assertFalse(published[0], "a publish the broker never confirmed succeeded")
        published[1].trap(errors.ConnectionClosed)
        self.assertIsInstance(ended[1], errors.ConnectionClosed)
        await client.when_closed()
        await self.assertFailure(two.basic_get(queue=queue), errors.ConnectionClosed)
