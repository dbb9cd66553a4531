"""
Request/reply over direct reply-to (L{txamqp_next.rpc}) against the real
broker: a server on another connection answers out of order, a request to
no queue is unroutable, an unanswered one times out.
"""

from __future__ import annotations

from twisted.internet import defer

from tests.integration.broker import BrokerTestCase, async_test, unique
from txamqp_next.confirms import Unroutable
from txamqp_next.message import Message
from txamqp_next.rpc import REPLY_TO, RPCClient, RPCTimeout, respond


class RPCTests(BrokerTestCase):
    """
    L{RPCClient} and L{respond} on RabbitMQ.
    """

    async def server(self, answer_after: int) -> tuple[str, list[Message]]:
        """
        A server that holds requests until C{answer_after} came, then
        answers them newest first with the request body reversed.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue=unique("rpc"), exclusive=True)).queue
        held: list[Message] = []

        def serve(request: Message) -> None:
            held.append(request)
            if len(held) == answer_after:
                for message in reversed(held):
                    respond(message, message.body[::-1])

        await ch.basic_consume(queue=queue, no_ack=True, callback=serve)
        return queue, held

    @async_test
    async def test_replies_correlated(self) -> None:
        """
        Five concurrent requests each get their own reply although the
        server answers in reverse order; requests carried direct reply-to.
        """
        queue, held = await self.server(answer_after=5)
        _, ch = await self.channel()
        rpc = await RPCClient(ch, timeout=10).start()
        calls = [rpc.call(routing_key=queue, body=b"request %d" % i) for i in range(5)]
        replies = await defer.gatherResults(calls)
        self.assertEqual([r.body for r in replies], [(b"request %d" % i)[::-1] for i in range(5)])
        self.assertTrue(all(m.properties.reply_to.startswith(REPLY_TO) for m in held))
        self.assertEqual(len(rpc), 0)
        await rpc.stop()

    @async_test
    async def test_unroutable_and_timeout(self) -> None:
        """
        A request to a queue that does not exist fails with Unroutable; one
        the server never answers fails with RPCTimeout.
        """
        queue, held = await self.server(answer_after=1000)
        _, ch = await self.channel()
        rpc = await RPCClient(ch).start()
        nowhere = rpc.call(routing_key=unique("nowhere"), body=b"?", timeout=5)
        failure = await self.assertFailure(nowhere, Unroutable)
        self.assertEqual(failure.message.reply_code, 312)
        ignored = rpc.call(routing_key=queue, body=b"anyone?", timeout=0.5)
        await self.assertFailure(ignored, RPCTimeout)
        self.assertEqual([m.body for m in held], [b"anyone?"])
