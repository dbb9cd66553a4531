# -*- test-case-name: tests.integration.test_confirms -*-
"""
Publisher confirms, returns and broker notifications against the real
RabbitMQ.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Coroutine
from typing import Any

from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

import txamqp_next
from tests.integration.broker import get_when_there
from txamqp_next import errors
from txamqp_next.channel import Channel, ConsumerCancelled
from txamqp_next.confirms import PublishNacked, Unroutable
from txamqp_next.connection import AMQPConnection
from txamqp_next.content import Content
from txamqp_next.endpoint import AMQEndpoint
from txamqp_next.factory import AMQFactory
from txamqp_next.message import Message
from txamqp_next.protocol import AMQClient

BROKER = os.environ.get("TXAMQP_NEXT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def unique(prefix: str) -> str:
    return f"txamqp-next-test-{prefix}-{uuid.uuid4().hex[:10]}"


class BrokerTestCase(TestCase):
    """
    Connects to the broker before each test and closes afterwards.
    """

    timeout = 60

    def run_async(self, coro: Coroutine[Any, Any, None]) -> defer.Deferred[None]:
        return defer.ensureDeferred(coro)

    async def connect(self) -> AMQPConnection:
        from twisted.internet import reactor

        try:
            client = await txamqp_next.connect(reactor, BROKER, connection_timeout=10)
        except Exception as e:
            self.fail(
                f"no RabbitMQ at {BROKER} ({e}); start one with `rabbitmq-server -detached` "
                "or run ./scripts/dev test"
            )
        self.addCleanup(client.close)
        return client

    async def channel(self) -> tuple[AMQPConnection, Channel]:
        client = await self.connect()
        return client, await client.open_channel()

    async def connect_txamqp(self) -> AMQClient:
        """
        A txAMQP-style client (L{AMQClient}), authenticated, closed at
        cleanup.
        """
        from twisted.internet import reactor

        try:
            client = await AMQEndpoint.from_uri(reactor, BROKER).connect(AMQFactory())
        except Exception as e:
            self.fail(
                f"no RabbitMQ at {BROKER} ({e}); start one with `rabbitmq-server -detached` "
                "or run ./scripts/dev test"
            )
        self.addCleanup(client.close)
        assert isinstance(client, AMQClient)
        return client


class ConfirmTests(BrokerTestCase):
    """
    In confirm mode each publish's Deferred tells whether the broker took
    the message.
    """

    def test_thousands_in_flight(self) -> defer.Deferred[None]:
        """
        3,000 publishes in flight at once all fire once acked, and the queue
        holds them all.
        """

        async def go() -> None:
            _, ch = await self.channel()
            queue = (await ch.queue_declare(queue="", exclusive=True)).queue
            await ch.confirm_select()
            publishes = [ch.basic_publish(routing_key=queue, body=b"%d" % i) for i in range(3000)]
            assert ch.confirms is not None
            self.assertGreater(len(ch.confirms), 0)
            results = await defer.gatherResults(publishes)
            self.assertEqual(results, [None] * 3000)
            self.assertEqual(len(ch.confirms), 0)
            declared = await ch.queue_declare(queue=queue, passive=True)
            self.assertEqual(declared.message_count, 3000)

        return self.run_async(go())

    def test_unroutable_mandatory(self) -> defer.Deferred[None]:
        """
        A mandatory message no queue takes fails with L{Unroutable}
        carrying the returned message; a routed one in between succeeds.
        """

        async def go() -> None:
            _, ch = await self.channel()
            queue = (await ch.queue_declare(queue="", exclusive=True)).queue
            await ch.confirm_select()
            lost = ch.basic_publish(routing_key=unique("nowhere"), body=b"lost", mandatory=True)
            kept = ch.basic_publish(routing_key=queue, body=b"kept", mandatory=True)
            error = await self.assertFailure(lost, Unroutable)
            self.assertEqual(error.message.reply_code, 312)
            self.assertEqual(error.message.body, b"lost")
            self.assertIsNone(await kept)

        return self.run_async(go())

    def test_nack_on_overflow(self) -> defer.Deferred[None]:
        """
        A queue that rejects publishes past its length makes the broker nack
        them: those fail with L{PublishNacked}, the first succeeds.
        """

        async def go() -> None:
            _, ch = await self.channel()
            queue = unique("overflow")
            await ch.queue_declare(
                queue=queue,
                exclusive=True,
                arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
            )
            await ch.confirm_select()
            first = ch.basic_publish(routing_key=queue, body=b"1")
            second = ch.basic_publish(routing_key=queue, body=b"2")
            self.assertIsNone(await first)
            error = await self.assertFailure(second, PublishNacked)
            self.assertEqual(error.delivery_tag, 2)

        return self.run_async(go())

    def test_channel_error_fails_in_flight(self) -> defer.Deferred[None]:
        """
        Publishing to a missing exchange closes the channel; the publish
        fails with L{errors.NotFound}, and so do later ones.
        """

        async def go() -> None:
            client, ch = await self.channel()
            await ch.confirm_select()
            d = ch.basic_publish(exchange=unique("missing"), routing_key="x", body=b"x")
            await self.assertFailure(d, errors.NotFound)
            await self.assertFailure(ch.basic_publish(body=b"y"), errors.NotFound)
            other = await client.open_channel()
            self.assertTrue(other.is_open)

        return self.run_async(go())


class ReturnTests(BrokerTestCase):
    """
    Without confirm mode returned messages reach a handler or the client's
    return queue.
    """

    def test_return_handler(self) -> defer.Deferred[None]:
        """
        A handler registered on the channel receives the returned message.
        """

        async def go() -> None:
            _, ch = await self.channel()
            returned: defer.Deferred[Message] = defer.Deferred()
            ch.add_return_handler(returned.callback)
            key = unique("nowhere")
            await ch.basic_publish(routing_key=key, body=b"back", mandatory=True)
            message = await returned
            self.assertEqual((message.body, message.routing_key), (b"back", key))
            self.assertEqual(message.reply_text, "NO_ROUTE")

        return self.run_async(go())

    def test_return_queue(self) -> defer.Deferred[None]:
        """
        With no handler, returns go to txAMQP's C{basic_return_queue}: the
        txAMQP-style client's (L{AMQClient}), whose delegate puts them there.
        """

        async def go() -> None:
            client = await self.connect_txamqp()
            ch = await client.channel(1)
            await ch.channel_open()
            await ch.basic_publish(
                routing_key=unique("nowhere"), content=Content(b"q"), mandatory=True
            )
            message = await client.basic_return_queue.get(timeout=5)
            self.assertEqual(message.content.body, b"q")

        return self.run_async(go())


class NotificationTests(BrokerTestCase):
    """
    Methods the broker sends on its own are handled, never fatal.
    """

    def test_consumer_cancelled_by_broker(self) -> defer.Deferred[None]:
        """
        Deleting a queue ends its consumer with L{ConsumerCancelled}; the
        channel lives on.
        """

        async def go() -> None:
            client, ch = await self.channel()
            queue = (await ch.queue_declare(queue=unique("cancel"))).queue
            consumer = await ch.basic_consume(queue=queue)
            other = await client.open_channel()
            await other.queue_delete(queue=queue)
            reason = await consumer.when_ended()
            self.assertIsInstance(reason, ConsumerCancelled)
            received = [m async for m in consumer]
            self.assertEqual(received, [])
            self.assertTrue(ch.is_open)
            await ch.queue_declare(queue="", exclusive=True)

        return self.run_async(go())

    def test_recover(self) -> defer.Deferred[None]:
        """
        C{basic_recover(requeue=True)} is answered with recover-ok and
        redelivers unacked messages.
        """

        async def go() -> None:
            _, ch = await self.channel()
            queue = (await ch.queue_declare(queue="", exclusive=True)).queue
            await ch.basic_publish(routing_key=queue, body=b"again")
            consumer = await ch.basic_consume(queue=queue)
            first = await consumer.queue.get(timeout=5)
            self.assertFalse(first.redelivered)
            ok = await ch.basic_recover(requeue=True)
            self.assertEqual(ok.NAME, "basic.recover-ok")
            second = await consumer.queue.get(timeout=5)
            self.assertTrue(second.redelivered)
            self.assertEqual(second.body, b"again")

        return self.run_async(go())

    def test_exchange_bind(self) -> defer.Deferred[None]:
        """
        Exchange-to-exchange bindings route; unbinding stops it.
        """

        async def go() -> None:
            _, ch = await self.channel()
            source, target = unique("src"), unique("dst")
            # not auto-delete: the source would vanish with its last binding
            await ch.exchange_declare(exchange=source, type="fanout")
            await ch.exchange_declare(exchange=target, type="fanout")
            queue = (await ch.queue_declare(queue="", exclusive=True)).queue
            await ch.queue_bind(queue=queue, exchange=target)
            await ch.exchange_bind(destination=target, source=source)
            await ch.basic_publish(exchange=source, body=b"via")
            await ch.exchange_unbind(destination=target, source=source)
            await ch.basic_publish(exchange=source, body=b"dropped")
            await task.deferLater(_reactor(), 0.2, lambda: None)
            message = await ch.basic_get(queue=queue, no_ack=True)
            assert message is not None
            self.assertEqual(message.body, b"via")
            self.assertIsNone(await ch.basic_get(queue=queue, no_ack=True))
            await ch.exchange_delete(exchange=source)
            await ch.exchange_delete(exchange=target)

        return self.run_async(go())

    def test_dead_letter_x_death(self) -> defer.Deferred[None]:
        """
        A message expiring in a TTL queue is dead-lettered with an
        C{x-death} header decoded as a list of tables.
        """

        async def go() -> None:
            _, ch = await self.channel()
            dead = (await ch.queue_declare(queue="", exclusive=True)).queue
            source = unique("ttl")
            await ch.queue_declare(
                queue=source,
                exclusive=True,
                arguments={
                    "x-message-ttl": 50,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": dead,
                },
            )
            await ch.basic_publish(routing_key=source, body=b"expire")
            message = await get_when_there(ch, dead)
            [death] = message.headers["x-death"]
            self.assertEqual(death["queue"], source)
            self.assertEqual(death["reason"], "expired")
            self.assertEqual(death["count"], 1)

        return self.run_async(go())

    def test_update_secret(self) -> defer.Deferred[None]:
        """
        C{update_secret} is answered with update-secret-ok (RabbitMQ accepts
        a new password for a PLAIN login).
        """

        async def go() -> None:
            client = await self.connect()
            ok = await client.update_secret("guest", reason="rotation")
            self.assertEqual(ok.NAME, "connection.update-secret-ok")

        return self.run_async(go())


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor
