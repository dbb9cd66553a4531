# -*- test-case-name: tests.integration.test_specs -*-
"""
Every spec, on the real broker: with each of Debian's 0-8, 0-9, 0-9-1 and
0-9-1-rabbit files (package amqp-specs) loaded, a channel consumes,
publishes, gets, acks, rejects, runs a transaction, sets QoS and cancels;
the broker's consumer cancel notification arrives; messages of every shape
(empty, without properties, many frames, got, returned) come whole; the
txAMQP-style client does the same; and a Thrift client calls a Thrift
server.

The channel sends only the fields each spec defines, so the same calls work
everywhere; what a spec lacks (confirms before 0-9-1-rabbit, C{basic.nack})
fails with an error naming the spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import ClientCreator

import txamqp_next
from tests.integration.broker import (
    BROKER,
    BrokerTestCase,
    async_test,
    get_when_there,
    reactor,
    unique,
)
from tests.thrift.support import Handler, calculator, processor, ttypes
from txamqp_next import errors, parse_url
from txamqp_next import spec as txspec
from txamqp_next.channel import Consumer, ConsumerCancelled
from txamqp_next.client import TwistedDelegate
from txamqp_next.content import Content
from txamqp_next.contrib.thrift.client import ThriftTwistedDelegate
from txamqp_next.contrib.thrift.protocol import ThriftAMQClient
from txamqp_next.protocol import AMQClient
from txamqp_next.queue import Closed as QueueClosed
from txamqp_next.queue import Empty
from txamqp_next.thrift import close_client, connect_client, serve

SPECS = Path("/usr/share/amqp/specs")
SPEC_FILES = {
    "0-8": SPECS / "0-8" / "amqp0-8.stripped.xml",
    "0-9": SPECS / "0-9" / "amqp0-9.stripped.xml",
    "0-9-1": SPECS / "0-9-1" / "amqp0-9-1.stripped.xml",
    "0-9-1-rabbit": SPECS / "0-9-1-rabbit" / "amqp0-9-1.stripped.extended.xml",
}


class SpecTestsMixin:
    """
    The round trips, for the spec named by C{version}.
    """

    version: str

    def spec_path(self) -> str:
        path = SPEC_FILES[self.version]
        if not path.exists():
            self.fail(f"{path} is missing: apt-get install amqp-specs")  # type: ignore[attr-defined]
        return str(path)

    async def delete_exchanges(self, *exchanges: str) -> None:
        client = await txamqp_next.connect(reactor(), BROKER)
        try:
            ch = await client.open_channel()
            for exchange in exchanges:
                await ch.exchange_delete(exchange=exchange)
        finally:
            await client.close()

    async def modern(self) -> Any:
        client = await self.connect(spec=self.spec_path())  # type: ignore[attr-defined]
        self.assertEqual(client.spec.file, self.spec_path())  # type: ignore[attr-defined]
        return client

    @async_test
    async def test_round_trip(self) -> None:
        """
        Declare, bind, QoS, consume, publish (properties by any spelling),
        ack, reject, get, cancel, and a transaction, with the spec loaded.
        """
        client = await self.modern()
        ch = await client.open_channel()
        queue, exchange = unique("spec-q"), unique("spec-x")
        await ch.exchange_declare(exchange=exchange, type="direct")
        self.addCleanup(self.delete_exchanges, exchange)  # type: ignore[attr-defined]
        ok = await ch.queue_declare(queue=queue, exclusive=True, arguments={})
        assert ok.queue == queue
        await ch.queue_bind(queue=queue, exchange=exchange, routing_key="k", arguments={})
        await ch.basic_qos(prefetch_count=10)
        consumer = await ch.basic_consume(queue=queue, arguments={})
        assert isinstance(consumer, Consumer)
        reply_to = "reply to" if self.version == "0-8" else "reply-to"
        for n in range(2):
            await ch.basic_publish(
                exchange=exchange,
                routing_key="k",
                body=f"m{n}",
                properties={"content_type": "text/plain", "delivery-mode": 2, reply_to: "r"},
            )
        first = await consumer.queue.get(timeout=5)
        second = await consumer.queue.get(timeout=5)
        self.assertEqual((first.body, second.body), (b"m0", b"m1"))  # type: ignore[attr-defined]
        self.assertEqual(first.properties.content_type, "text/plain")  # type: ignore[attr-defined]
        self.assertEqual(first.properties.delivery_mode, 2)  # type: ignore[attr-defined]
        self.assertEqual(first.properties.reply_to, "r")  # type: ignore[attr-defined]
        await first.ack()
        await second.reject(requeue=False)
        await ch.basic_cancel(consumer.consumer_tag)
        self.assertIsInstance(consumer.cancelled, ConsumerCancelled)  # type: ignore[attr-defined]
        await ch.basic_publish(routing_key=queue, body=b"got")
        got = await get_when_there(ch, queue)
        self.assertEqual(got.body, b"got")  # type: ignore[attr-defined]
        self.assertIsNone(await ch.basic_get(queue=queue))  # type: ignore[attr-defined]
        await ch.tx_select()
        await ch.basic_publish(routing_key=queue, body=b"rolled back")
        await ch.tx_rollback()
        await ch.basic_publish(routing_key=queue, body=b"committed")
        await ch.tx_commit()
        committed = await ch.basic_get(queue=queue, no_ack=True)
        self.assertEqual(committed.body, b"committed")  # type: ignore[attr-defined]
        self.assertIsNone(await ch.basic_get(queue=queue))  # type: ignore[attr-defined]
        await ch.channel_close()

    @async_test
    async def test_message_shapes(self) -> None:
        """
        Messages of every shape the receive path tells apart come through
        whole, in order: an empty one, one without properties, one whose
        body spans many frames, one with properties; a C{basic.get} of an
        empty one; and an empty one the broker returns.
        """
        client = await self.modern()
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        consumer = await ch.basic_consume(queue=queue, no_ack=True)
        big = bytes(range(256)) * 1000  # more than one frame at any frame_max
        sent = [
            (b"", None),
            (b"plain", None),
            (big, None),
            (b"with", {"content_type": "text/plain"}),
        ]
        for body, properties in sent:
            ch.basic_publish(routing_key=queue, body=body, properties=properties)
        got = [await consumer.queue.get(timeout=5) for _ in sent]
        self.assertEqual(
            [(m.body, m.properties.content_type) for m in got],  # type: ignore[attr-defined]
            [(b"", None), (b"plain", None), (big, None), (b"with", "text/plain")],
        )
        await ch.basic_cancel(consumer.consumer_tag)
        await ch.basic_publish(routing_key=queue, body=b"")
        empty = await get_when_there(ch, queue)
        self.assertEqual(empty.body, b"")  # type: ignore[attr-defined]
        returned: defer.Deferred[Any] = defer.Deferred()
        ch.add_return_handler(returned.callback)
        ch.basic_publish(routing_key=unique("nowhere"), body=b"", mandatory=True)
        message = await returned
        self.assertEqual((message.body, message.method.NAME), (b"", "basic.return"))  # type: ignore[attr-defined]

    @async_test
    async def test_broker_cancels_consumer(self) -> None:
        """
        Deleting the queue of a consumer ends it with L{ConsumerCancelled}:
        the broker's C{basic.cancel} is taken whatever the spec file says of
        its direction.
        """
        client = await self.modern()
        ch = await client.open_channel()
        other = await client.open_channel()
        queue = unique("spec-cancel")
        await ch.queue_declare(queue=queue, auto_delete=False)
        consumer = await ch.basic_consume(queue=queue)
        await other.queue_delete(queue=queue)
        reason = await consumer.when_ended()
        self.assertIsInstance(reason, ConsumerCancelled)  # type: ignore[attr-defined]
        # the channel and connection go on
        declared = await ch.queue_declare(queue="", exclusive=True)
        self.assertTrue(declared.queue)  # type: ignore[attr-defined]

    @async_test
    async def test_what_the_spec_lacks(self) -> None:
        """
        A method the spec lacks fails with L{LocalProtocolError} naming the
        spec, and a field it lacks with a value is a C{TypeError}; nothing
        reaches the broker and the channel goes on.
        """
        client = await self.modern()
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        if ch.methods.get("confirm.select") is None:
            failure = await _failure(ch.confirm_select())
            self.assertIsInstance(failure, errors.LocalProtocolError)  # type: ignore[attr-defined]
            self.assertIn(self.spec_path(), str(failure))  # type: ignore[attr-defined]
        else:
            await ch.confirm_select()
            await ch.basic_publish(routing_key=queue, body=b"confirmed")
        if ch.methods.get("basic.consume").SPEC.fields[-1].name != "arguments":
            with self.assertRaises(TypeError) as caught:  # type: ignore[attr-defined]
                ch.basic_consume(queue=queue, arguments={"x-priority": 1})
            self.assertIn(self.spec_path(), str(caught.exception))  # type: ignore[attr-defined]
        declared = await ch.queue_declare(queue=queue, passive=True)
        self.assertEqual(declared.queue, queue)  # type: ignore[attr-defined]

    @async_test
    async def test_txamqp_style(self) -> None:
        """
        The txAMQP way with the spec: positional arguments, C{Content} with
        the spec's property names, C{client.queue(tag)}, replies as txAMQP
        messages, and a broker cancel raising an exception that is both
        L{ConsumerCancelled} and txAMQP's C{queue.Closed}.
        """
        params = parse_url(BROKER)
        client = await ClientCreator(
            reactor(), AMQClient, TwistedDelegate(), params.vhost, txspec.load(self.spec_path())
        ).connectTCP(params.host, params.port)
        self.addCleanup(client.close)  # type: ignore[attr-defined]
        opened = await client.authenticate("guest", "guest")
        self.assertEqual(opened.method.name, "open-ok")  # type: ignore[attr-defined]
        chan = await client.channel(1)
        await chan.channel_open()
        queue, exchange = unique("tx-q"), unique("tx-x")
        await chan.exchange_declare(0, exchange, "direct", False, False)
        self.addCleanup(self.delete_exchanges, exchange)  # type: ignore[attr-defined]
        reply = await chan.queue_declare(queue=queue, auto_delete=True)
        self.assertEqual(reply.method.klass.name, "queue")  # type: ignore[attr-defined]
        self.assertEqual(reply.fields[0], queue)  # type: ignore[attr-defined]
        await chan.queue_bind(queue=queue, exchange=exchange, routing_key="k")
        consume_ok = await chan.basic_consume(queue=queue, consumer_tag="tag")
        self.assertEqual(consume_ok.consumer_tag, "tag")  # type: ignore[attr-defined]
        deliveries = await client.queue("tag")
        mode = "delivery mode" if self.version == "0-8" else "delivery-mode"
        content = Content("hello")
        content[mode] = 2
        chan.basic_publish(exchange=exchange, routing_key="k", content=content)
        msg = await deliveries.get(timeout=5)
        self.assertEqual(msg.content.body, b"hello")  # type: ignore[attr-defined]
        self.assertEqual(msg.content[mode], 2)  # type: ignore[attr-defined]
        self.assertEqual(msg.method.name, "deliver")  # type: ignore[attr-defined]
        chan.basic_ack(msg.delivery_tag)
        get_empty = await chan.basic_get(queue=queue, no_ack=True)
        self.assertEqual(get_empty.method.name, "get-empty")  # type: ignore[attr-defined]
        other = await client.channel(2)
        await other.channel_open()
        await other.queue_delete(queue=queue)
        with self.assertRaises(QueueClosed) as caught:  # type: ignore[attr-defined]
            await deliveries.get(timeout=5)
        self.assertIsInstance(caught.exception, ConsumerCancelled)  # type: ignore[attr-defined]
        try:
            await chan.queue_declare(queue=unique("missing"), passive=True)
        except errors.NotFound as e:
            close = e.args[0]
            self.assertEqual(close.method.klass.name, "channel")  # type: ignore[attr-defined]
            self.assertEqual(close.fields[0], 404)  # type: ignore[attr-defined]
        else:
            self.fail("passive declare of a missing queue succeeded")  # type: ignore[attr-defined]
        with self.assertRaises(Empty):  # type: ignore[attr-defined]
            await (await client.queue("never")).get(timeout=0.1)

    @async_test
    async def test_thrift(self) -> None:
        """
        A Thrift client calls a Thrift server, both on connections speaking
        the spec (the server uses confirms only where the spec has them).
        """
        service, exchange = unique("spec-svc"), unique("spec-thrift-x")
        self.addCleanup(self.delete_exchanges, exchange)  # type: ignore[attr-defined]
        server_amqp = await self.modern()
        server = await serve(server_amqp, service, processor(Handler()), exchange=exchange)
        self.addCleanup(server.stop, 5)  # type: ignore[attr-defined]
        client_amqp = await self.modern()
        calc = await connect_client(client_amqp, service, calculator().Client, exchange=exchange)
        self.addCleanup(close_client, calc)  # type: ignore[attr-defined]
        self.assertEqual(await calc.add(2, 3), 5)  # type: ignore[attr-defined]
        self.assertEqual(await calc.echo(b"\x00\xff"), b"\x00\xff")  # type: ignore[attr-defined]
        with self.assertRaises(ttypes().DivideByZero):  # type: ignore[attr-defined]
            await calc.divide(1, 0)

    @async_test
    async def test_txamqp_thrift(self) -> None:
        """
        txAMQP's Thrift names (C{ThriftAMQClient}'s C{createThriftServer}
        and C{createThriftClient}) call each other with the spec loaded.
        """
        params = parse_url(BROKER)
        spec = txspec.load(self.spec_path())
        exchange, responses, key = unique("ctx"), unique("ctx-resp"), unique("ctx-key")
        clients = []
        for _ in range(2):
            client = await ClientCreator(
                reactor(), ThriftAMQClient, ThriftTwistedDelegate(), params.vhost, spec
            ).connectTCP(params.host, params.port)
            self.addCleanup(client.close)  # type: ignore[attr-defined]
            await client.authenticate("guest", "guest")
            clients.append(client)
        server_client, client_client = clients
        chan = await client_client.channel(1)
        await chan.channel_open()
        await chan.exchange_declare(exchange=exchange, type="direct")
        await chan.exchange_declare(exchange=responses, type="direct")
        self.addCleanup(self.delete_exchanges, exchange, responses)  # type: ignore[attr-defined]
        await server_client.createThriftServer(
            responses, exchange, key, processor(Handler()), unique("ctx-q")
        )
        calc = await client_client.createThriftClient(
            responses, exchange, key, calculator().Client, timeout=10
        )
        self.assertEqual(await calc.add(20, 22), 42)  # type: ignore[attr-defined]


async def _failure(d: defer.Deferred[Any]) -> BaseException:
    try:
        await d
    except Exception as e:
        return e
    raise AssertionError("the call succeeded")


class Spec08Tests(SpecTestsMixin, BrokerTestCase):
    """
    With Debian's 0-8 spec.
    """

    version = "0-8"


class Spec09Tests(SpecTestsMixin, BrokerTestCase):
    """
    With Debian's 0-9 spec (txAMQP's default).
    """

    version = "0-9"


class Spec091Tests(SpecTestsMixin, BrokerTestCase):
    """
    With Debian's plain 0-9-1 spec.
    """

    version = "0-9-1"


class Spec091RabbitTests(SpecTestsMixin, BrokerTestCase):
    """
    With Debian's copy of RabbitMQ's 0-9-1 spec.
    """

    version = "0-9-1-rabbit"
