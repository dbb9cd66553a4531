# -*- test-case-name: tests.test_testing -*-
"""
Tests for L{txamqp_next.testing.AMQPump}, txAMQP's in-memory transport for
unit tests, driving a real client through the protocol core with a
L{Clock} and no socket.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from txamqp_next import errors
from txamqp_next.channel import ConsumerCancelled
from txamqp_next.client import ConnectionClosed, TwistedDelegate
from txamqp_next.connection import AMQPConnection
from txamqp_next.content import Content
from txamqp_next.factory import AMQFactory
from txamqp_next.protocol import AMQClient
from txamqp_next.queue import Closed as QueueClosed
from txamqp_next.testing import AMQPump, BodyPayload, HeaderPayload


class PumpTests(SynchronousTestCase):
    """
    A txAMQP client on an L{AMQPump}, as txAMQP's own AMQPump tests and
    downstream programs use it.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.client = AMQClient(TwistedDelegate(), "/", clock=self.clock)
        self.transport = AMQPump()
        self.transport.connect(self.client)

    def names(self, channel: int) -> list[str]:
        return [
            f"{f.payload.method.klass.name}.{f.payload.method.name}"
            for f in self.transport.outgoing.get(channel, [])
            if hasattr(f.payload, "method")
        ]

    def test_connect_opens(self) -> None:
        """
        C{connect} plays the broker's handshake: the client is open, its
        C{started} event fired, and nothing of the handshake is recorded.
        """
        self.assertTrue(self.transport.initialized)
        self.assertTrue(self.transport.connected)
        self.successResultOf(self.client.when_open())
        self.assertTrue(self.successResultOf(self.client.started.wait()))
        self.assertEqual(self.transport.outgoing, {})
        self.assertEqual(self.transport.incoming, {})

    def test_send_receive(self) -> None:
        """
        A consumer on a channel the test never opened (txAMQP's pattern):
        the pump answers the C{channel.open} the client sends first, the
        test pumps C{consume-ok} and a delivery, and the delivery reaches
        C{client.queue(tag)} with its body as bytes.
        """
        channel = self.successResultOf(self.client.channel(1))
        server = self.transport.channel(1)
        d = channel.basic_consume(queue="test-queue")
        self.assertEqual(self.names(1), ["channel.open", "basic.consume"])
        server.basic_consume_ok(consumer_tag="consumer")
        reply = self.successResultOf(d)
        self.assertEqual(reply.consumer_tag, "consumer")
        queue = self.successResultOf(self.client.queue(reply.consumer_tag))
        got = queue.get(timeout=1)
        server.deliver("hello", consumer_tag="consumer", delivery_tag=1)
        message = self.successResultOf(got)
        self.assertEqual(message.content.body, b"hello")
        self.assertEqual(message.delivery_tag, 1)
        self.assertEqual(message.method.name, "deliver")

    def test_explicit_open_ok_not_answered_twice(self) -> None:
        """
        A test that opens the channel and pumps C{channel_open_ok} itself
        works too: the pump drops the C{open-ok} it already sent.
        """
        channel = self.successResultOf(self.client.channel(2))
        d = channel.channel_open()
        self.transport.channel(2).channel_open_ok()
        self.assertEqual(self.successResultOf(d).method.name, "open-ok")
        self.assertIsNone(self.client.closed)
        self.assertEqual(self.transport.incoming, {})

    def test_handshake_methods_pumped_later_dropped(self) -> None:
        """
        Handshake methods a test pumps after C{connect} (as txAMQP tests did
        to start their client) are dropped: the handshake is done.
        """
        self.transport.channel(0).connection_start()
        self.transport.channel(0).connection_tune(frame_max=4096)
        self.transport.channel(0).connection_open_ok()
        self.assertIsNone(self.client.closed)
        opened = self.successResultOf(self.client.authenticate("guest", "guest"))
        self.assertEqual(opened.method.name, "open-ok")

    def test_connection_close(self) -> None:
        """
        The broker's C{connection.close} is answered with C{close-ok}, closes
        the client, and fails calls with L{ConnectionClosed} whose
        C{args[0]} is the close as a txAMQP message.
        """
        channel = self.successResultOf(self.client.channel(1))
        d = channel.basic_consume(queue="test-queue")
        self.transport.channel(0).connection_close(reply_code=320, reply_text="shutdown")
        self.assertEqual(self.names(0), ["connection.close-ok"])
        self.assertTrue(self.client.closed)
        failure = self.failureResultOf(d, ConnectionClosed)
        self.assertIsInstance(failure.value, errors.ConnectionForced)
        close = failure.value.args[0]
        self.assertEqual(close.reply_code, 320)
        self.assertEqual((close.method.klass.name, close.method.name), ("connection", "close"))
        self.assertFalse(self.transport.connected)
        self.assertTrue(self.successResultOf(self.client.disconnected.wait()))

    def test_channel_close(self) -> None:
        """
        The broker's C{channel.close} fails the channel's call with the
        typed L{errors.NotFound}, a C{ChannelClosed}.
        """
        channel = self.successResultOf(self.client.channel(1))
        d = channel.basic_consume(queue="missing")
        self.transport.channel(1).channel_close(reply_code=404, reply_text="NOT_FOUND")
        failure = self.failureResultOf(d, errors.NotFound)
        self.assertEqual(failure.value.args[0].reply_code, 404)
        self.assertEqual(self.names(1)[-1], "channel.close-ok")

    def test_broker_cancel(self) -> None:
        """
        A C{basic.cancel} from the broker closes the consumer's queue with
        an error that is both L{ConsumerCancelled} and txAMQP's
        C{queue.Closed}.
        """
        channel = self.successResultOf(self.client.channel(1))
        d = channel.basic_consume(queue="q")
        self.transport.channel(1).basic_consume_ok(consumer_tag="tag")
        self.successResultOf(d)
        queue = self.successResultOf(self.client.queue("tag"))
        got = queue.get()
        self.transport.channel(1).basic_cancel(consumer_tag="tag")
        failure = self.failureResultOf(got, QueueClosed)
        self.assertIsInstance(failure.value, ConsumerCancelled)

    def test_lose_and_abort(self) -> None:
        """
        C{loseConnection} and C{abortConnection} end the client; the latter
        is recorded as C{aborted}; both are idempotent.
        """
        self.transport.abortConnection()
        self.transport.abortConnection()
        self.assertTrue(self.transport.aborted)
        self.assertFalse(self.transport.connected)
        self.assertTrue(self.client.closed)
        self.transport.loseConnection()

    def test_publish_recorded(self) -> None:
        """
        A publish is recorded as its method, header (with properties by
        their Python names) and body frames.
        """
        channel = self.successResultOf(self.client.channel(1))
        content = Content("body", properties={"delivery-mode": 2})
        channel.basic_publish(routing_key="rk", content=content)
        self.clock.advance(0)
        frames = self.transport.outgoing[1]
        self.assertEqual(self.names(1), ["channel.open", "basic.publish"])
        header, body = (f.payload for f in frames[-2:])
        assert isinstance(header, HeaderPayload) and isinstance(body, BodyPayload)
        self.assertEqual(
            (header.klass.name, header.size, header.properties), ("basic", 4, {"delivery_mode": 2})
        )
        self.assertEqual(body.content, b"body")

    def test_logger(self) -> None:
        """
        With a logger, each frame in and out is logged at debug level.
        """
        seen: list[str] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            seen.append(formatEvent(event))

        client = AMQClient(TwistedDelegate(), "/", clock=Clock())
        pump = AMQPump(Logger(observer=observe))
        pump.connect(client)
        channel = self.successResultOf(client.channel(1))
        channel.basic_qos(prefetch_count=1)
        pump.channel(1).basic_qos_ok()
        text = "\n".join(seen)
        self.assertIn("Outgoing frame", text)
        self.assertIn("Incoming frame", text)


class FactoryPumpTests(SynchronousTestCase):
    """
    The pattern of downstream programs: an L{AMQFactory} with a clock builds
    clients, each connected to a new pump, and code retries after a loss.
    """

    def test_reconnect_after_close(self) -> None:
        """
        After the broker closes the connection with 320 (a restart), a new
        client from the factory on a new pump works again.
        """
        clock = Clock()
        factory = AMQFactory(clock=clock)
        clients: list[tuple[Any, AMQPump]] = []
        for _ in range(2):
            client = factory.buildProtocol(None)
            pump = AMQPump()
            pump.connect(client)
            clients.append((client, pump))
        (first, first_pump), (second, second_pump) = clients
        channel = self.successResultOf(first.channel(1))
        d = channel.basic_consume(consumer_tag="t", queue="q")
        # pumped on channel 1, as downstream tests do: it goes to channel 0
        first_pump.channel(1).connection_close(reply_code=320)
        failure = self.failureResultOf(d, ConnectionClosed)
        self.assertEqual(failure.value.args[0].reply_code, 320)
        channel = self.successResultOf(second.channel(1))
        d = channel.basic_consume(consumer_tag="t", queue="q")
        second_pump.channel(1).basic_consume_ok(consumer_tag="t")
        self.assertEqual(self.successResultOf(d).consumer_tag, "t")

    def test_heartbeat_client(self) -> None:
        """
        A client asking for heartbeats is tuned to them by the pump, sends
        them on the clock, and leaves no timer behind once closed.
        """
        clock = Clock()
        factory = AMQFactory(clock=clock)
        factory.set_heartbeat(1)
        client = factory.buildProtocol(None)
        pump = AMQPump()
        pump.connect(client)
        self.assertEqual(client.heartbeatInterval, 1)
        clock.advance(1)
        self.assertIn(0, pump.outgoing)
        self.assertEqual(pump.outgoing[0][-1].payload.type, "frame_heartbeat")
        client.close()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_modern_connection(self) -> None:
        """
        The pump drives any L{AMQPConnection} too.
        """
        connection = AMQPConnection(clock=Clock())
        pump = AMQPump()
        pump.connect(connection)
        d = connection.open_channel()
        channel = self.successResultOf(d)
        self.assertTrue(channel.is_open)
        declared = channel.queue_declare(queue="q")
        pump.channel(1).queue_declare_ok(queue="q", message_count=2, consumer_count=0)
        self.assertEqual(self.successResultOf(declared).message_count, 2)
