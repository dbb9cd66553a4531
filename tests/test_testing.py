# -*- test-case-name: tests.test_testing -*-
"""
Tests for L{txamqp_next.testing}: L{MemoryBroker}, the in-memory broker,
and L{AMQPump}, txAMQP's in-memory transport, both driving a real client
through the protocol core with a L{Clock} and no socket.
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
from txamqp_next.confirms import PublishNacked
from txamqp_next.connection import AMQPConnection
from txamqp_next.content import Content
from txamqp_next.factory import AMQFactory
from txamqp_next.protocol import AMQClient
from txamqp_next.queue import Closed as QueueClosed
from txamqp_next.testing import AMQPump, BodyPayload, HeaderPayload, MemoryBroker


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


class MemoryBrokerCase(SynchronousTestCase):
    """
    A client connected to a L{MemoryBroker}, with one channel open.
    """

    def setUp(self) -> None:
        self.broker = MemoryBroker()
        self.client = self.successResultOf(self.broker.open_connection())
        self.channel = self.result(self.client.open_channel())

    def result(self, d: Any) -> Any:
        self.broker.flush()
        return self.successResultOf(d)

    def closed_with(self, d: Any, channel: Any = None) -> errors.ChannelClosed:
        """
        C{d} fails as its channel is closed by the broker; the error.
        """
        self.broker.flush()
        error = self.failureResultOf(d, errors.ChannelClosed).value
        self.assertIsNot((channel or self.channel).closed, None)
        self.assertIsNone(self.client.closed)
        return error

    def received(self, queue: str, no_ack: bool = True) -> list[bytes]:
        """
        The bodies C{basic.get} takes from C{queue}, until it is empty.
        """
        bodies = []
        while True:
            message = self.result(self.channel.basic_get(queue=queue, no_ack=no_ack))
            if message is None or getattr(message, "body", None) is None:
                return bodies
            bodies.append(message.body)


class MemoryConnectTests(MemoryBrokerCase):
    """
    Connecting: the handshake, credentials, virtual hosts, refusal.
    """

    def test_open(self) -> None:
        """
        C{open_connection} fires with an open client that negotiated the
        broker's limits; the broker lists the connection.
        """
        self.assertEqual(
            self.client.server_properties["product"], "txamqp_next.testing.MemoryBroker"
        )
        self.assertEqual([c.number for c in self.broker.live], [1])
        self.assertEqual(self.broker.current.username, "guest")
        self.assertEqual(list(self.broker.current.channels), [1])

    def test_wrong_password(self) -> None:
        """
        A wrong password is refused with 403 ACCESS_REFUSED, as RabbitMQ does.
        """
        from txamqp_next._params import Credentials

        d = self.broker.open_connection(credentials=Credentials("guest", "nope"))
        error = self.failureResultOf(d, errors.AuthenticationError).value
        self.assertEqual(error.reply_code, 403)
        self.assertIn("Login was refused", error.reply_text)

    def test_unknown_vhost(self) -> None:
        """
        An unknown virtual host is refused with 530 NOT_ALLOWED.
        """
        d = self.broker.open_connection(vhost="nowhere")
        error = self.failureResultOf(d, errors.NotAllowed).value
        self.assertEqual(
            (error.reply_code, error.reply_text), (530, "NOT_ALLOWED - vhost nowhere not found")
        )

    def test_refused(self) -> None:
        """
        While not accepting, connecting fails with C{ConnectionRefusedError}.
        """
        from twisted.internet.error import ConnectionRefusedError

        self.broker.accepting = False
        self.failureResultOf(self.broker.open_connection(), ConnectionRefusedError)
        self.assertEqual(self.broker.attempts, 2)

    def test_frame_max(self) -> None:
        """
        A body larger than the agreed frame size is split into frames and
        arrives whole.
        """
        broker = MemoryBroker(frame_max=4096)
        client = self.successResultOf(broker.open_connection())
        broker.flush()
        d = client.open_channel()
        broker.flush()
        channel = self.successResultOf(d)
        channel.queue_declare(queue="big")
        body = bytes(range(256)) * 100
        channel.basic_publish(routing_key="big", body=body)
        d = channel.basic_get(queue="big")
        broker.flush()
        self.assertEqual(self.successResultOf(d).body, body)
        self.assertEqual(broker.current.frame_max, 4096)

    def test_heartbeats(self) -> None:
        """
        With heartbeats agreed the broker sends them on the clock, so a
        client left idle stays connected.
        """
        broker = MemoryBroker(heartbeat=5)
        client = self.successResultOf(broker.open_connection())
        for _ in range(10):
            broker.clock.advance(5)
            broker.flush()
        self.assertIsNone(client.closed)


class MemoryRoutingTests(MemoryBrokerCase):
    """
    Exchanges of the four types route as RabbitMQ's do.
    """

    def publish_to(self, exchange: str, key: str, headers: Any = None) -> list[str]:
        self.channel.basic_publish(
            exchange=exchange, routing_key=key, body=key.encode(), properties={"headers": headers}
        )
        self.broker.flush()
        return self.broker.published[-1].queues

    def test_default_exchange(self) -> None:
        """
        The default exchange routes to the queue named by the routing key.
        """
        self.result(self.channel.queue_declare(queue="q"))
        self.assertEqual(self.publish_to("", "q"), ["q"])
        self.assertEqual(self.publish_to("", "other"), [])
        self.assertEqual(self.broker.queues["q"].bodies(), [b"q"])

    def test_direct_fanout(self) -> None:
        """
        Direct routes on the exact key; fanout to every bound queue.
        """
        for q in ("a", "b"):
            self.result(self.channel.queue_declare(queue=q))
            self.result(self.channel.queue_bind(queue=q, exchange="amq.direct", routing_key=q))
            self.result(self.channel.queue_bind(queue=q, exchange="amq.fanout"))
        self.assertEqual(self.publish_to("amq.direct", "a"), ["a"])
        self.assertEqual(sorted(self.publish_to("amq.fanout", "x")), ["a", "b"])

    def test_topic(self) -> None:
        """
        C{*} matches one word, C{#} zero or more.
        """
        self.result(self.channel.queue_declare(queue="star"))
        self.result(self.channel.queue_declare(queue="hash"))
        self.result(self.channel.queue_bind(queue="star", exchange="amq.topic", routing_key="a.*"))
        self.result(self.channel.queue_bind(queue="hash", exchange="amq.topic", routing_key="a.#"))
        self.assertEqual(sorted(self.publish_to("amq.topic", "a.b")), ["hash", "star"])
        self.assertEqual(self.publish_to("amq.topic", "a"), ["hash"])
        self.assertEqual(self.publish_to("amq.topic", "a.b.c"), ["hash"])
        self.assertEqual(self.publish_to("amq.topic", "b.a"), [])

    def test_headers(self) -> None:
        """
        C{x-match} C{all} needs every header, C{any} one of them.
        """
        self.result(self.channel.queue_declare(queue="all"))
        self.result(self.channel.queue_declare(queue="any"))
        self.result(
            self.channel.queue_bind(
                queue="all", exchange="amq.headers", arguments={"x-match": "all", "a": 1, "b": 2}
            )
        )
        self.result(
            self.channel.queue_bind(
                queue="any", exchange="amq.headers", arguments={"x-match": "any", "a": 1, "b": 2}
            )
        )
        self.assertEqual(
            sorted(self.publish_to("amq.headers", "k", {"a": 1, "b": 2})), ["all", "any"]
        )
        self.assertEqual(self.publish_to("amq.headers", "k", {"a": 1}), ["any"])
        self.assertEqual(self.publish_to("amq.headers", "k", {"a": 2}), [])

    def test_exchange_to_exchange(self) -> None:
        """
        C{exchange.bind} routes through another exchange.
        """
        self.result(self.channel.exchange_declare(exchange="front", type="fanout"))
        self.result(self.channel.exchange_bind(destination="amq.direct", source="front"))
        self.result(self.channel.queue_declare(queue="q"))
        self.result(self.channel.queue_bind(queue="q", exchange="amq.direct", routing_key="k"))
        self.assertEqual(self.publish_to("front", "k"), ["q"])

    def test_mandatory_returned(self) -> None:
        """
        An unroutable mandatory publish comes back as C{basic.return} 312
        NO_ROUTE.
        """
        self.channel.basic_publish(
            exchange="amq.direct", routing_key="nowhere", body=b"x", mandatory=True
        )
        self.broker.flush()
        [record] = self.broker.returned
        self.assertEqual(
            (record.exchange, record.routing_key, record.body), ("amq.direct", "nowhere", b"x")
        )
        self.assertIn((1, "basic.publish"), self.broker.current.names())


class MemoryErrorTests(MemoryBrokerCase):
    """
    Bad requests close their channel with RabbitMQ's codes (checked against
    RabbitMQ 3.10), and leave the connection open.
    """

    def test_passive_missing(self) -> None:
        """
        A passive declare of a missing queue is 404, naming class and method.
        """
        error = self.closed_with(self.channel.queue_declare(queue="missing", passive=True))
        self.assertEqual(error.reply_code, 404)
        self.assertEqual(error.reply_text, "NOT_FOUND - no queue 'missing' in vhost '/'")
        self.assertEqual((error.class_id, error.method_id), (50, 10))

    def test_exchange_redeclared_other_type(self) -> None:
        """
        Redeclaring an exchange with another type is 406.
        """
        self.result(self.channel.exchange_declare(exchange="x", type="direct"))
        error = self.closed_with(self.channel.exchange_declare(exchange="x", type="fanout"))
        self.assertEqual(error.reply_code, 406)
        self.assertIn("inequivalent arg 'type'", error.reply_text)

    def test_queue_redeclared_other_arguments(self) -> None:
        """
        Redeclaring a queue with other arguments is 406.
        """
        self.result(self.channel.queue_declare(queue="q"))
        error = self.closed_with(
            self.channel.queue_declare(queue="q", arguments={"x-max-length": 2})
        )
        self.assertEqual(error.reply_code, 406)

    def test_exclusive_queue_locked(self) -> None:
        """
        Another connection's exclusive queue is 405 RESOURCE_LOCKED; it goes
        with its connection.
        """
        self.result(self.channel.queue_declare(queue="mine", exclusive=True))
        other = self.successResultOf(self.broker.open_connection())
        channel = self.result(other.open_channel())
        error = self.closed_with(channel.queue_declare(queue="mine", passive=True), channel)
        self.assertEqual(error.reply_code, 405)
        self.result(self.client.close())
        self.assertNotIn("mine", self.broker.queues)

    def test_unknown_delivery_tag(self) -> None:
        """
        Acking an unknown delivery tag is 406 on the ack's channel.
        """
        self.channel.basic_ack(delivery_tag=7)
        self.broker.flush()
        self.assertIsInstance(self.channel.closed, errors.PreconditionFailed)
        self.assertEqual(
            self.channel.closed.reply_text, "PRECONDITION_FAILED - unknown delivery tag 7"
        )

    def test_exclusive_consumer(self) -> None:
        """
        Consuming from a queue with an exclusive consumer is 403.
        """
        self.result(self.channel.queue_declare(queue="q"))
        self.result(self.channel.basic_consume(queue="q", exclusive=True, callback=list))
        other = self.result(self.client.open_channel())
        error = self.closed_with(other.basic_consume(queue="q", callback=list), other)
        self.assertEqual(error.reply_code, 403)

    def test_publish_to_missing_exchange(self) -> None:
        """
        Publishing to a missing exchange closes the channel with 404.
        """
        self.channel.basic_publish(exchange="nope", routing_key="k", body=b"x")
        self.broker.flush()
        self.assertIsInstance(self.channel.closed, errors.NotFound)

    def test_delete_if_unused(self) -> None:
        """
        C{if_unused} refuses a queue with consumers (406); C{if_empty} one
        with messages.
        """
        self.result(self.channel.queue_declare(queue="q"))
        self.broker.publish("q", b"x")
        error = self.closed_with(self.channel.queue_delete(queue="q", if_empty=True))
        self.assertIn("not empty", error.reply_text)


class MemoryConsumeTests(MemoryBrokerCase):
    """
    Consumers, QoS, acknowledgements and broker-side cancels.
    """

    def setUp(self) -> None:
        super().setUp()
        self.result(self.channel.queue_declare(queue="q"))

    def test_round_robin(self) -> None:
        """
        Messages go to the queue's consumers in turn.
        """
        a: list[Any] = []
        b: list[Any] = []
        self.result(self.channel.basic_consume(queue="q", callback=a.append, no_ack=True))
        self.result(self.channel.basic_consume(queue="q", callback=b.append, no_ack=True))
        for body in (b"1", b"2", b"3", b"4"):
            self.broker.publish("q", body)
        self.broker.flush()
        self.assertEqual([m.body for m in a], [b"1", b"3"])
        self.assertEqual([m.body for m in b], [b"2", b"4"])

    def test_server_named_tag(self) -> None:
        """
        A consumer without a tag gets a server-generated one.
        """
        consumer = self.result(self.channel.basic_consume(queue="q", callback=list))
        self.assertTrue(consumer.consumer_tag.startswith("amq.ctag-"))
        self.assertEqual(list(self.broker.current.channels[1].consumers), [consumer.consumer_tag])

    def test_prefetch(self) -> None:
        """
        With C{prefetch_count} 2 only two deliveries are outstanding; an ack
        lets the next one through.
        """
        got: list[Any] = []
        self.result(self.channel.basic_qos(prefetch_count=2))
        self.result(self.channel.basic_consume(queue="q", callback=got.append))
        for body in (b"1", b"2", b"3"):
            self.broker.publish("q", body)
        self.broker.flush()
        self.assertEqual([m.body for m in got], [b"1", b"2"])
        self.assertEqual(self.broker.queues["q"].bodies(), [b"3"])
        self.result(got[0].ack())
        self.assertEqual([m.body for m in got], [b"1", b"2", b"3"])

    def test_nack_requeue_redelivers(self) -> None:
        """
        A nack with requeue puts the message back, redelivered; a reject
        without requeue drops it.
        """
        got: list[Any] = []
        self.result(self.channel.basic_consume(queue="q", callback=got.append))
        self.broker.publish("q", b"m")
        self.broker.flush()
        self.result(got[0].nack(requeue=True))
        self.assertEqual([(m.body, m.redelivered) for m in got], [(b"m", False), (b"m", True)])
        self.result(got[1].reject(requeue=False))
        self.assertEqual(self.broker.queues["q"].bodies(), [])
        self.assertEqual(
            [name for _, name, _ in self.broker.settled], ["basic.nack", "basic.reject"]
        )

    def test_channel_close_requeues(self) -> None:
        """
        Unacked messages go back to their queue when their channel closes.
        """
        got: list[Any] = []
        self.result(self.channel.basic_consume(queue="q", callback=got.append))
        self.broker.publish("q", b"m")
        self.broker.flush()
        self.result(self.channel.close())
        self.assertEqual(self.broker.queues["q"].bodies(), [b"m"])
        self.assertTrue(self.broker.queues["q"].messages[0].redelivered)

    def test_get(self) -> None:
        """
        C{basic.get} returns messages with the count left, then C{get-empty}.
        """
        self.broker.publish("q", b"1")
        self.broker.publish("q", b"2")
        first = self.result(self.channel.basic_get(queue="q", no_ack=True))
        self.assertEqual((first.body, first.message_count), (b"1", 1))
        self.assertEqual(self.received("q"), [b"2"])

    def test_delete_cancels_consumers(self) -> None:
        """
        Deleting a queue cancels its consumers with C{basic.cancel}.
        """
        consumer = self.result(self.channel.basic_consume(queue="q", callback=list))
        self.broker.delete_queue("q")
        self.broker.flush()
        self.assertIsInstance(self.successResultOf(consumer.when_ended()), ConsumerCancelled)

    def test_auto_delete(self) -> None:
        """
        An auto-delete queue goes when its last consumer is cancelled.
        """
        self.result(self.channel.queue_declare(queue="auto", auto_delete=True))
        consumer = self.result(self.channel.basic_consume(queue="auto", callback=list))
        self.result(consumer.cancel())
        self.assertNotIn("auto", self.broker.queues)


class MemoryConfirmTests(MemoryBrokerCase):
    """
    Publisher confirms, tx, and faults on demand.
    """

    def test_confirms(self) -> None:
        """
        In confirm mode each publish is acked; with C{nack_publishes} nacked.
        """
        self.result(self.channel.confirm_select())
        self.result(self.channel.basic_publish(routing_key="q", body=b"a"))
        self.broker.nack_publishes = True
        d = self.channel.basic_publish(routing_key="q", body=b"b")
        self.broker.flush()
        self.failureResultOf(d, PublishNacked)

    def test_held_confirms(self) -> None:
        """
        Held confirms go out when the test says so.
        """
        self.result(self.channel.confirm_select())
        self.broker.hold_confirms = True
        d = self.channel.basic_publish(routing_key="q", body=b"a")
        self.broker.flush()
        self.assertNoResult(d)
        self.broker.current.confirm(1)
        self.broker.flush()
        self.successResultOf(d)

    def test_tx(self) -> None:
        """
        Publishes in a transaction are routed at commit, dropped at rollback.
        """
        self.result(self.channel.queue_declare(queue="q"))
        self.result(self.channel.tx_select())
        self.channel.basic_publish(routing_key="q", body=b"rolled back")
        self.result(self.channel.tx_rollback())
        self.channel.basic_publish(routing_key="q", body=b"committed")
        self.broker.flush()
        self.assertEqual(self.broker.queues["q"].bodies(), [])
        self.result(self.channel.tx_commit())
        self.assertEqual(self.broker.queues["q"].bodies(), [b"committed"])

    def test_lose_connections(self) -> None:
        """
        C{lose_connections} drops the client at once.
        """
        self.broker.lose_connections()
        self.assertIsInstance(self.client.closed, Exception)
        self.assertEqual(self.broker.live, [])

    def test_close_connections(self) -> None:
        """
        C{close_connections} closes with 320 CONNECTION_FORCED.
        """
        self.broker.close_connections()
        self.broker.flush()
        self.assertIsInstance(self.client.closed, errors.ConnectionClosed)
        self.assertEqual(self.client.closed.reply_code, 320)
        self.assertEqual(self.broker.live, [])

    def test_close_channel(self) -> None:
        """
        The broker may close one channel; the connection stays.
        """
        self.broker.current.close_channel(1, 406, "PRECONDITION_FAILED - test")
        self.broker.flush()
        self.assertIsInstance(self.channel.closed, errors.PreconditionFailed)
        self.assertIsNone(self.client.closed)
