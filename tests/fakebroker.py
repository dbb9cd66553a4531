"""
A fake broker that answers a client's calls by itself, for unit tests of
code that connects, loses connections and connects again (the recovering
connection, the services).  It runs on a L{Clock}: replies go out on the
next turn, so a test calls L{FakeBroker.flush} to let the two sides talk.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from tests.helpers import FrameFactory, SentParser
from txamqp_next import _frames
from txamqp_next._methods import Method


@dataclass
class Published:
    """
    A message the client published.
    """

    connection: int
    channel: int
    method: Method
    properties: Any
    body: bytes = b""
    size: int = 0


@dataclass
class FakeConnection:
    """
    The broker's side of one connection.
    """

    broker: FakeBroker
    number: int
    protocol: Any
    parser: SentParser
    frames: FrameFactory
    closed: bool = False
    methods: list[tuple[int, Method]] = field(default_factory=list)
    confirming: set[int] = field(default_factory=set)
    sequence: dict[int, int] = field(default_factory=dict)
    pending: Published | None = None
    unacked: dict[tuple[int, int], tuple[str, bytes, dict[str, Any] | None]] = field(
        default_factory=dict
    )
    tags: dict[int, int] = field(default_factory=dict)

    def names(self) -> list[tuple[int, str]]:
        """
        C{(channel, method name)} for each method the client sent.
        """
        return [(channel, method.NAME) for channel, method in self.methods]

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.broker.clock.callLater(0, self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if not self.closed:
            self.protocol.dataReceived(data)

    def reply(self, channel: int, name: str, **fields: Any) -> None:
        self.send(self.frames.method(channel, name, **fields))

    def deliver(
        self,
        channel: int,
        consumer_tag: str,
        delivery_tag: int,
        body: bytes,
        headers: dict[str, Any] | None = None,
        redelivered: bool = False,
    ) -> None:
        self.send(
            self.frames.deliver(
                channel,
                consumer_tag,
                delivery_tag,
                body,
                properties={"headers": headers} if headers else None,
                redelivered=redelivered,
            )
        )

    def close(
        self, channel: int, reply_code: int, reply_text: str, class_id: int, method_id: int
    ) -> None:
        """
        Close a channel (the connection, on channel 0) for a fault.
        """
        self.reply(
            channel,
            "connection.close" if channel == 0 else "channel.close",
            reply_code=reply_code,
            reply_text=reply_text,
            class_id=class_id,
            method_id=method_id,
        )

    def ack(self, channel: int, delivery_tag: int, multiple: bool = False) -> None:
        self.reply(channel, "basic.ack", delivery_tag=delivery_tag, multiple=multiple)

    def received(self, data: bytes) -> None:
        for kind, channel, item in self.parser.feed(data):
            if kind == _frames.FRAME_METHOD:
                self.methods.append((channel, item))
                self.answer(channel, item)
            elif kind == _frames.FRAME_HEADER and self.pending is not None:
                self.pending.properties = item[2]
                self.pending.size = item[1]
                self._maybe_done()
            elif kind == _frames.FRAME_BODY and self.pending is not None:
                self.pending.body += item
                self._maybe_done()

    def _maybe_done(self) -> None:
        pending = self.pending
        assert pending is not None
        if pending.properties is not None and len(pending.body) >= pending.size:
            self.pending = None
            method = pending.method
            routes = self.broker.routes
            if (
                routes is not None
                and method.mandatory
                and method.exchange
                and (method.exchange, method.routing_key) not in routes
            ):
                self.send(
                    self.frames.returned(
                        pending.channel,
                        pending.body,
                        method.exchange,
                        method.routing_key,
                        properties={"reply_to": pending.properties.reply_to},
                    )
                )
                self.broker.returned.append(pending)
            else:
                self.broker.published.append(pending)
            if pending.channel in self.confirming:
                self.sequence[pending.channel] += 1
                if self.broker.auto_confirm:
                    self.ack(pending.channel, self.sequence[pending.channel])

    def answer(self, channel: int, method: Method) -> None:
        name = method.NAME
        broker = self.broker
        if name == "connection.start-ok":
            if broker.refuse_login:
                self.close(0, 403, "ACCESS_REFUSED - Login was refused", 0, 0)
            else:
                self.send(self.frames.tune(heartbeat=0))
        elif name == "connection.open":
            if broker.missing_vhost:
                self.close(0, 530, "NOT_ALLOWED - vhost missing not found", 10, 40)
            else:
                self.send(self.frames.open_ok())
        elif name == "connection.close":
            self.reply(0, "connection.close-ok")
            broker.clock.callLater(0, self.lose)
        elif name == "connection.close-ok":
            self.lose()
        elif name == "channel.open":
            self.reply(channel, "channel.open-ok")
        elif name == "channel.close":
            self.reply(channel, "channel.close-ok")
        elif name == "basic.publish":
            self.pending = Published(self.number, channel, method, None)
        elif name == "queue.declare":
            queue = method.queue or f"amq.gen-{next(broker.names)}"
            if method.passive and queue not in broker.queues:
                self.close(channel, 404, f"NOT_FOUND - no queue '{queue}'", 50, 10)
                return
            if queue in broker.inequivalent:
                self.close(
                    channel,
                    406,
                    f"PRECONDITION_FAILED - inequivalent arg for queue '{queue}'",
                    50,
                    10,
                )
                return
            broker.queues.add(queue)
            if not method.no_wait:
                self.reply(
                    channel, "queue.declare-ok", queue=queue, message_count=0, consumer_count=0
                )
        elif name == "queue.bind" and method.exchange in broker.missing_exchanges:
            self.close(channel, 404, f"NOT_FOUND - no exchange '{method.exchange}'", 50, 20)
        elif name == "basic.consume":
            tag = method.consumer_tag or f"amq.ctag-{next(broker.names)}"
            if method.queue not in broker.queues:
                self.close(channel, 404, f"NOT_FOUND - no queue '{method.queue}'", 60, 20)
                return
            broker.consumers[tag] = (self, channel)
            broker.consumed[tag] = method.queue
            self.reply(channel, "basic.consume-ok", consumer_tag=tag)
        elif name == "basic.cancel":
            broker.consumers.pop(method.consumer_tag, None)
            self.reply(channel, "basic.cancel-ok", consumer_tag=method.consumer_tag)
        elif name == "confirm.select":
            self.confirming.add(channel)
            self.sequence[channel] = 0
            self.reply(channel, "confirm.select-ok")
        elif name == "queue.delete":
            broker.queues.discard(method.queue)
            self.reply(channel, "queue.delete-ok", message_count=0)
        elif name in ("basic.ack", "basic.nack", "basic.reject"):
            broker.settled.append((self.number, name, method))
            unacked = self.unacked.pop((channel, method.delivery_tag), None)
            if unacked is not None and name != "basic.ack" and method.requeue:
                broker.requeued += 1
                if broker.redeliver:
                    queue, body, headers = unacked
                    broker.clock.callLater(0, broker.publish, queue, body, headers, True)
        elif method.expects_reply and method.RESPONSES:
            self.reply(channel, method.RESPONSES[0].NAME)

    def lose(self, reason: type[Exception] = ConnectionDone) -> None:
        """
        The connection ends (the broker went away).
        """
        if self.closed:
            return
        self.closed = True
        for tag, (connection, _) in list(self.broker.consumers.items()):
            if connection is self:
                del self.broker.consumers[tag]
        self.protocol.connectionLost(Failure(reason()))


class FakeTransport:
    """
    The client's transport to a L{FakeConnection}.
    """

    disconnecting = False

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection

    def write(self, data: bytes) -> None:
        if not self.connection.closed:
            self.connection.received(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.connection.broker.clock.callLater(0, self.connection.lose)

    def abortConnection(self) -> None:
        self.connection.lose(ConnectionLost)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 5672)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000)


@implementer(IStreamClientEndpoint)
class FakeBroker:
    """
    A broker on a L{Clock}, and the endpoint that reaches it.

    @ivar up: whether connecting to it works.
    @ivar auto_confirm: in confirm mode, ack each publish at once.
    @ivar published: every message published, over all connections.
    @ivar settled: C{(connection, method name, method)} for each ack, nack
        and reject the clients sent.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock if clock is not None else Clock()
        self.up = True
        self.refuse_login = False
        self.missing_vhost = False
        self.auto_confirm = True
        self.inequivalent: set[str] = set()
        self.connections: list[FakeConnection] = []
        self.published: list[Published] = []
        self.settled: list[tuple[int, str, Method]] = []
        self.queues: set[str] = set()
        self.consumers: dict[str, tuple[FakeConnection, int]] = {}
        self.names = itertools.count(1)
        self.attempts = 0
        self.consumed: dict[str, str] = {}
        #: when set, the (exchange, routing key) pairs a mandatory publish
        #: to a named exchange may go to; others are returned
        self.routes: set[tuple[str, str]] | None = None
        #: exchanges a queue.bind finds missing
        self.missing_exchanges: set[str] = set()
        self.returned: list[Published] = []
        self.requeued = 0
        self.redeliver = True

    @property
    def current(self) -> FakeConnection:
        """
        The latest connection.
        """
        return self.connections[-1]

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        self.attempts += 1
        if not self.up:
            return fail(ConnectionRefusedError("fake broker down"))
        protocol = protocolFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5672))
        assert protocol is not None
        spec = protocol.spec
        connection = FakeConnection(
            self, len(self.connections) + 1, protocol, SentParser(spec), FrameFactory(spec)
        )
        self.connections.append(connection)
        transport = FakeTransport(connection)
        protocol.makeConnection(transport)
        connection.send(connection.frames.start())
        return succeed(protocol)

    def publish(
        self,
        queue: str,
        body: bytes,
        headers: dict[str, Any] | None = None,
        redelivered: bool = False,
    ) -> int:
        """
        Deliver a message to the first live consumer of C{queue}.

        @return: its delivery tag.
        """
        for tag, (connection, channel) in self.consumers.items():
            if self.consumed.get(tag) == queue and not connection.closed:
                number = connection.tags[channel] = connection.tags.get(channel, 0) + 1
                connection.unacked[(channel, number)] = (queue, body, headers)
                connection.deliver(channel, tag, number, body, headers, redelivered)
                return number
        raise AssertionError(f"no consumer of {queue}")

    def cancel(self, queue: str) -> None:
        """
        Cancel the consumers of C{queue}, as the broker does when it is
        deleted.
        """
        self.queues.discard(queue)
        for tag, (connection, channel) in list(self.consumers.items()):
            if self.consumed.get(tag) == queue:
                del self.consumers[tag]
                connection.reply(channel, "basic.cancel", consumer_tag=tag, no_wait=True)

    def flush(self, rounds: int = 100) -> None:
        """
        Let the client and the broker talk until neither has more to say.
        """
        for _ in range(rounds):
            if not any(call.getTime() <= self.clock.seconds() for call in self.clock.calls):
                return
            self.clock.advance(0)

    def stop(self) -> None:
        """
        The broker goes down: every connection is lost and new ones are
        refused.
        """
        self.up = False
        for connection in self.connections:
            connection.lose(ConnectionLost)
        self.flush()
