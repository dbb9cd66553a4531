# -*- test-case-name: tests.test_txamqp_suite -*-
# trial's assertions are untyped, and its setUp and tearDown may return a
# Deferred where unittest's return None:
# mypy: disable-error-code="no-untyped-call,override"
"""
txAMQP's C{txamqp.testlib}: L{TestBase}, a trial test case connected to a
real broker, for integration tests written the txAMQP way.

Each test gets C{self.client} (an L{AMQClient}, logged in) and
C{self.channel} (channel 1, open); the queues and exchanges declared
through L{TestBase.queue_declare} and L{TestBase.exchange_declare} are
deleted afterwards and every connection made is closed.

The broker is the one on C{localhost:5672}, logged into as guest; the
environment can change that:

  - C{TXAMQP_SPEC}: the spec file to speak (a path or short name); the
    default spec otherwise.  (txAMQP's test base loaded
    C{../specs/standard/amqp0-9.stripped.xml} from the working directory.)
  - C{TXAMQP_BROKER}: C{RABBITMQ} (the default), C{OPENAMQ} or C{QPID}, for
    L{SupportedBrokers}.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from twisted.internet import error, protocol
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial import unittest

from txamqp_next import spec as txspec
from txamqp_next.client import Closed, TwistedDelegate
from txamqp_next.content import Content
from txamqp_next.protocol import AMQClient
from txamqp_next.queue import Empty

__all__ = [
    "OPENAMQ",
    "PASSWORD",
    "QPID",
    "RABBITMQ",
    "USERNAME",
    "VHOST",
    "SupportedBrokers",
    "TestBase",
    "TestDelegate",
]

RABBITMQ = "RABBITMQ"
OPENAMQ = "OPENAMQ"
QPID = "QPID"

USERNAME = "guest"
PASSWORD = "guest"
VHOST = "/"
HEARTBEAT = 0


def _get_broker() -> str | None:
    return os.environ.get("TXAMQP_BROKER")


class SupportedBrokers:
    """
    A decorator that skips a test unless C{TXAMQP_BROKER} names one of the
    given brokers.
    """

    def __init__(self, *brokers: str) -> None:
        self.brokers = brokers

    def __call__(self, f: Any) -> Any:
        if _get_broker() not in self.brokers:
            f.skip = "Not supported for this broker."
        return f


class TestDelegate(TwistedDelegate):
    """
    A delegate that keeps the broker's server properties.
    """

    def __init__(self) -> None:
        super().__init__()
        self.server_properties: dict[str, Any] = {}

    def connection_start(self, ch: Any, msg: Any) -> None:
        self.server_properties = msg.server_properties
        super().connection_start(ch, msg)


class _OneClientFactory(protocol.ClientFactory):
    """
    Connects one given client, firing C{connected} with it.
    """

    noisy = False

    def __init__(self, client: AMQClient) -> None:
        self.client = client
        self.connected: Deferred[AMQClient] = Deferred()

    def buildProtocol(self, addr: Any) -> AMQClient:
        from twisted.internet import reactor

        self.client.factory = self
        # once the transport is attached
        reactor.callLater(0, self.connected.callback, self.client)
        return self.client

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.connected.called:
            self.connected.errback(reason)


class TestBase(unittest.TestCase):
    """
    A test case with a logged-in client and an open channel.

    @cvar clientClass: the client class to connect with.
    @cvar heartbeat: the heartbeat interval to ask for.
    """

    clientClass: type[AMQClient] = AMQClient
    heartbeat = HEARTBEAT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = "localhost"
        self.port = 5672
        broker = _get_broker()
        if broker is None:
            warnings.warn(
                "Using default broker rabbitmq. Define TXAMQP_BROKER "
                "environment variable to customized it.",
                stacklevel=2,
            )
            broker = RABBITMQ
        if broker not in (RABBITMQ, OPENAMQ, QPID):
            raise RuntimeError(
                f"Unsupported broker '{broker}'. Use one of RABBITMQ, OPENAMQ or QPID"
            )
        self.broker = broker
        self.spec = os.environ.get("TXAMQP_SPEC") or txspec.DEFAULT_SPEC
        self.user = USERNAME
        self.password = PASSWORD
        self.vhost = VHOST
        self.queues: list[tuple[Any, str]] = []
        self.exchanges: list[tuple[Any, str]] = []
        self.connectors: list[Any] = []
        self.clients: list[AMQClient] = []

    @inlineCallbacks
    def connect(
        self,
        host: str | None = None,
        port: int | None = None,
        spec: str | None = None,
        user: str | None = None,
        password: str | None = None,
        vhost: str | None = None,
        heartbeat: int | None = None,
        clientClass: type[AMQClient] | None = None,
    ) -> Any:
        """
        Connect and log in.

        @return: a L{Deferred} firing with the client.
        """
        from twisted.internet import reactor

        host = host or self.host
        port = port or self.port
        chosen_spec = spec or self.spec
        user = user or self.user
        password = password or self.password
        vhost = vhost or self.vhost
        heartbeat = heartbeat or self.heartbeat
        client_class = clientClass or self.clientClass
        client = client_class(TestDelegate(), vhost, txspec.load(chosen_spec), heartbeat=heartbeat)
        factory = _OneClientFactory(client)
        connector = reactor.connectTCP(host, port, factory)
        self.connectors.append(connector)
        try:
            yield factory.connected
        except error.ConnectionRefusedError as e:
            raise error.ConnectionRefusedError(
                f"no {self.broker} AMQP broker answers on {host}:{port}; these tests need "
                "one running (start RabbitMQ with `rabbitmq-server -detached`)"
            ) from e
        self.clients.append(client)
        yield self.authenticate(client, user, password)
        return client

    @inlineCallbacks
    def authenticate(self, client: AMQClient, user: str, password: str) -> Any:
        """
        Log C{client} in (override to use another mechanism).
        """
        yield client.authenticate(user, password)

    @inlineCallbacks
    def setUp(self) -> Any:
        try:
            self.client = yield self.connect()
        except Closed as e:
            e.args = (
                "Unable to connect to AMQP broker in order to run tests (perhaps due to "
                "auth failure?). The tests assume that an instance of the "
                f"{self.broker} AMQP broker is already set up and that this test script "
                f"can connect to it and use it as user '{USERNAME}', password "
                f"'{PASSWORD}', vhost '{VHOST}'.",
                *e.args,
            )
            raise
        self.channel = yield self.client.channel(1)
        yield self.channel.channel_open()

    @inlineCallbacks
    def tearDown(self) -> Any:
        for ch, q in self.queues:
            yield ch.queue_delete(queue=q)
        for ch, ex in self.exchanges:
            yield ch.exchange_delete(exchange=ex)
        for client in self.clients:
            if client.closed is None:
                yield client.close(within=5)
        for connector in self.connectors:
            connector.disconnect()

    @inlineCallbacks
    def queue_declare(self, channel: Any = None, *args: Any, **keys: Any) -> Any:
        """
        Declare a queue that L{tearDown} deletes.
        """
        channel = channel or self.channel
        reply = yield channel.queue_declare(*args, **keys)
        self.queues.append((channel, reply.queue))
        return reply

    @inlineCallbacks
    def exchange_declare(
        self,
        channel: Any = None,
        ticket: int = 0,
        exchange: str = "",
        type: str = "",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Any:
        """
        Declare an exchange that L{tearDown} deletes.
        """
        channel = channel or self.channel
        reply = yield channel.exchange_declare(
            ticket,
            exchange,
            type,
            passive,
            durable,
            auto_delete,
            internal,
            nowait,
            arguments or {},
        )
        self.exchanges.append((channel, exchange))
        return reply

    def assertChannelException(self, expectedCode: int, message: Any) -> None:
        """
        C{message} is a C{channel.close} with C{expectedCode}.
        """
        self.assertEqual("channel", message.method.klass.name)
        self.assertEqual("close", message.method.name)
        self.assertEqual(expectedCode, message.reply_code)

    def assertConnectionException(self, expectedCode: int, message: Any) -> None:
        """
        C{message} is a C{connection.close} with C{expectedCode}.
        """
        self.assertEqual("connection", message.method.klass.name)
        self.assertEqual("close", message.method.name)
        self.assertEqual(expectedCode, message.reply_code)

    @inlineCallbacks
    def consume(self, queueName: str) -> Any:
        """
        Consume from the named queue, without acks.

        @return: a L{Deferred} firing with the consumer's queue.
        """
        reply = yield self.channel.basic_consume(queue=queueName, no_ack=True)
        queue = yield self.client.queue(reply.consumer_tag)
        return queue

    @inlineCallbacks
    def assertEmpty(self, queue: Any) -> Any:
        """
        Nothing arrives on C{queue} within a second.
        """
        try:
            yield queue.get(timeout=1)
            self.fail("Queue is not empty.")
        except Empty:
            pass

    @inlineCallbacks
    def assertPublishGet(
        self,
        queue: Any,
        exchange: str = "",
        routing_key: str = "",
        properties: dict[str, Any] | None = None,
    ) -> Any:
        """
        Publish to C{exchange} and check that C{queue} gets the same message
        (body and properties) within a second.
        """
        body = self.uniqueString()
        self.channel.basic_publish(
            exchange=exchange,
            content=Content(body, properties=properties),
            routing_key=routing_key,
        )
        msg = yield queue.get(timeout=1)
        self.assertEqual(body.encode("utf-8"), msg.content.body)
        if properties:
            self.assertEqual(properties, msg.content.properties)

    def uniqueString(self) -> str:
        """
        A string for a message body.
        """
        if "uniqueCounter" not in dir(self):
            self.uniqueCounter = 1
        return "Test Message " + str(self.uniqueCounter)

    @inlineCallbacks
    def assertPublishConsume(
        self,
        queue: str = "",
        exchange: str = "",
        routing_key: str = "",
        properties: dict[str, Any] | None = None,
    ) -> Any:
        """
        Publish a message and consume it from C{queue}: it comes back intact.
        """
        consumed = yield self.consume(queue)
        yield self.assertPublishGet(consumed, exchange, routing_key, properties)
