"""
Test helpers: a broker-side frame factory, a parser for what the client
sent, and a scripted frame-level broker (L{Broker}) for protocol-level
tests that write each reply frame themselves.

Tests that need a broker that behaves by itself use the public
L{txamqp_next.testing.MemoryBroker} instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from txamqp_next import _frames
from txamqp_next._connection import Connection, Credentials
from txamqp_next._methods import Method, MethodSet, methods_for
from txamqp_next.channel import Channel
from txamqp_next.connection import AMQPConnection
from txamqp_next.spec import Spec, load
from txamqp_next.testing import MemoryBroker


class FrameFactory:
    """
    Build the frames a broker would send.
    """

    def __init__(self, spec: Spec | None = None) -> None:
        self.spec = spec if spec is not None else load()
        self.methods: MethodSet = methods_for(self.spec)

    def method(self, channel: int, name: str, **fields: Any) -> bytes:
        return _frames.method_frame(channel, self.methods[name](**fields).encode())

    def content(
        self,
        channel: int,
        name: str,
        body: bytes,
        frame_max: int = 131072,
        properties: dict[str, Any] | None = None,
        **fields: Any,
    ) -> bytes:
        method = self.methods[name](**fields)
        props = self.methods.properties[method.CLASS_ID](**(properties or {}))
        frames = [_frames.method_frame(channel, method.encode())]
        frames += _frames.content_frames(channel, props.encode_header(len(body)), body, frame_max)
        return b"".join(frames)

    def deliver(
        self,
        channel: int,
        consumer_tag: str,
        delivery_tag: int,
        body: bytes,
        properties: dict[str, Any] | None = None,
        redelivered: bool = False,
        exchange: str = "",
        routing_key: str = "q",
    ) -> bytes:
        """
        A C{basic.deliver} with its content.
        """
        return self.content(
            channel,
            "basic.deliver",
            body,
            properties=properties,
            consumer_tag=consumer_tag,
            delivery_tag=delivery_tag,
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
        )

    def returned(
        self,
        channel: int,
        body: bytes,
        exchange: str,
        routing_key: str,
        properties: dict[str, Any] | None = None,
    ) -> bytes:
        """
        A C{basic.return} (312 NO_ROUTE) with its content.
        """
        return self.content(
            channel,
            "basic.return",
            body,
            properties=properties,
            reply_code=312,
            reply_text="NO_ROUTE",
            exchange=exchange,
            routing_key=routing_key,
        )

    def get_ok(
        self, channel: int, body: bytes, delivery_tag: int = 3, message_count: int = 4
    ) -> bytes:
        """
        A C{basic.get-ok} from queue C{q}, redelivered, with its content.
        """
        return self.content(
            channel,
            "basic.get-ok",
            body,
            delivery_tag=delivery_tag,
            redelivered=True,
            exchange="",
            routing_key="q",
            message_count=message_count,
        )

    def start(self, mechanisms: bytes = b"PLAIN AMQPLAIN", **extra: Any) -> bytes:
        return self.method(
            0,
            "connection.start",
            version_major=0,
            version_minor=9,
            server_properties={"product": "RabbitMQ", "capabilities": {"publisher_confirms": True}},
            mechanisms=mechanisms,
            locales=b"en_US",
            **extra,
        )

    def tune(self, channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60) -> bytes:
        return self.method(
            0, "connection.tune", channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat
        )

    def open_ok(self) -> bytes:
        return self.method(0, "connection.open-ok")


class SentParser:
    """
    Decode what the client wrote, as a broker would.
    """

    def __init__(self, spec: Spec | None = None) -> None:
        self.spec = spec if spec is not None else load()
        self.methods = methods_for(self.spec)
        self.reader = _frames.FrameReader(0)
        self.header_seen = False

    def feed(self, data: bytes) -> list[tuple[int, int, Any]]:
        """
        @return: C{(frame_type, channel, item)} where item is a L{Method},
            a C{(class_id, size, properties)} header, or body bytes.
        """
        if not self.header_seen:
            assert data[:8] == self.spec.protocol_header, data[:8]
            data = data[8:]
            self.header_seen = True
        self.reader.feed(data)
        out: list[tuple[int, int, Any]] = []
        while True:
            frame = self.reader.next_frame()
            if frame is _frames.NEED_DATA:
                return out
            assert isinstance(frame, tuple)
            kind, channel, payload = frame
            item: Any
            if kind == _frames.FRAME_METHOD:
                item = self.methods.decode(payload)
            elif kind == _frames.FRAME_HEADER:
                item = self.methods.decode_header(payload)
            else:
                item = payload
            out.append((kind, channel, item))

    def methods_sent(self, data: bytes) -> list[Method]:
        return [item for kind, _, item in self.feed(data) if kind == _frames.FRAME_METHOD]


def open_connection(
    tune: dict[str, int] | None = None, **kwargs: Any
) -> tuple[Connection, FrameFactory, SentParser]:
    """
    A core connection taken through the handshake with a fake broker.

    @param tune: what the fake broker proposes in C{connection.tune}.
    @param kwargs: for L{Connection}.
    """
    kwargs.setdefault("credentials", Credentials())
    conn = Connection(**kwargs)
    factory = FrameFactory(conn.spec)
    parser = SentParser(conn.spec)
    parser.feed(conn.data_to_send())
    conn.receive_data(factory.start())
    conn.receive_data(factory.tune(**(tune or {})))
    events = conn.receive_data(factory.open_ok())
    assert events, "no ConnectionOpened"
    parser.feed(conn.data_to_send())
    return conn, factory, parser


def open_channel(
    conn: Connection, factory: FrameFactory, parser: SentParser, channel: int | None = None
) -> int:
    ch = conn.open_channel(channel)
    parser.feed(conn.data_to_send())
    conn.receive_data(factory.method(ch, "channel.open-ok"))
    return ch


PASSWORD = "pa55-w0rd-XYZZY"


class RecordingTransport(StringTransport):
    """
    A L{StringTransport} that records C{abortConnection}, and, like a TLS
    transport, drops whatever is written after C{loseConnection}
    (L{twisted.internet.interfaces.ITransport} says nothing may be).
    """

    aborted = False
    #: how many writes the client made
    writes = 0

    def __init__(self) -> None:
        super().__init__()
        self.written_after_lose: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.disconnecting:
            self.written_after_lose.append(data)
            return
        super().write(data)

    def writeSequence(self, seq: Any) -> None:
        self.write(b"".join(seq))

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class TLSLikeTransport(RecordingTransport):
    """
    Like Twisted's TLS transport: C{loseConnection} shuts down only once no
    producer is registered (else it waits for C{unregisterProducer}).
    """

    shut_down = False

    def loseConnection(self) -> None:
        super().loseConnection()
        if self.producer is None:
            self.shut_down = True

    def unregisterProducer(self) -> None:
        super().unregisterProducer()
        if self.disconnecting:
            self.shut_down = True


class Broker:
    """
    The broker side of one connection connected to a L{RecordingTransport}.

    @ivar client: the connection: an L{AMQPConnection} unless another class
        was given (L{txamqp_next.protocol.AMQClient} for txAMQP's names).
    """

    def __init__(
        self,
        transport: RecordingTransport | None = None,
        cls: Callable[..., AMQPConnection] = AMQPConnection,
        **kwargs: Any,
    ) -> None:
        """
        @param transport: the transport; a new L{RecordingTransport} when
            omitted.
        @param cls: the connection class, called with C{clock} and
            C{kwargs}.
        @param kwargs: for C{cls}; C{credentials} defaults to guest's.
        """
        self.clock = Clock()
        kwargs.setdefault("credentials", Credentials())
        self.client: Any = cls(clock=self.clock, **kwargs)
        self.frames = FrameFactory(self.client.spec)
        self.parser = SentParser(self.client.spec)
        self.transport = transport if transport is not None else RecordingTransport()
        self.client.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.client.dataReceived(data)

    def reply(self, name: str, channel: int = 1, **fields: Any) -> None:
        self.send(self.frames.method(channel, name, **fields))

    def frames_sent(self) -> list[tuple[int, int, Any]]:
        """
        Every frame the client wrote since the last call, once the reactor
        turn is over (publishes after the first of a turn wait for its end).
        """
        self.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return self.parser.feed(data)

    def sent(self) -> list[Method]:
        """
        The methods the client wrote since the last call.
        """
        return [item for kind, _, item in self.frames_sent() if kind == _frames.FRAME_METHOD]

    def sent_names(self) -> list[tuple[int, str]]:
        """
        C{(channel, method name)} for every method written since the last call.
        """
        return [
            (channel, item.NAME)
            for kind, channel, item in self.frames_sent()
            if kind == _frames.FRAME_METHOD
        ]

    def handshake(self, heartbeat: int = 0) -> None:
        """
        Take the client through start, tune and open-ok, and forget what it
        sent.
        """
        self.send(self.frames.start())
        self.send(self.frames.tune(heartbeat=heartbeat))
        self.send(self.frames.open_ok())
        self.frames_sent()

    def open_channel(self, channel_id: int | None = None) -> Channel:
        """
        Open a channel and answer its C{open}.
        """
        d = self.client.open_channel(channel_id)
        [(number, name)] = self.sent_names()
        assert name == "channel.open", name
        self.reply("channel.open-ok", number)
        return self.successResult(d)

    def deliver(
        self,
        consumer_tag: str,
        delivery_tag: int,
        body: bytes = b"body",
        channel: int = 1,
        properties: dict[str, Any] | None = None,
    ) -> None:
        self.send(
            self.frames.deliver(
                channel,
                consumer_tag,
                delivery_tag,
                body,
                properties=properties,
                exchange="ex",
                routing_key="rk",
            )
        )

    def lose(self, reason: type[Exception] = ConnectionDone) -> None:
        self.client.connectionLost(Failure(reason()))

    @staticmethod
    def successResult(d: Deferred[Any]) -> Any:
        results: list[Any] = []
        d.addBoth(results.append)
        [result] = results
        if isinstance(result, Failure):
            result.raiseException()
        return result


def open_broker(**kwargs: Any) -> Broker:
    """
    A broker whose client finished the handshake (no heartbeat).
    """
    broker = Broker(**kwargs)
    broker.handshake()
    return broker


class CapturedLog:
    """
    Collect the events logged while it is installed.
    """

    def __init__(self, test: SynchronousTestCase) -> None:
        self.events: list[LogEvent] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            self.events.append(event)

        globalLogPublisher.addObserver(observe)
        test.addCleanup(globalLogPublisher.removeObserver, observe)

    def texts(self) -> list[str]:
        return [formatEvent(e) for e in self.events]


def load_script(name: str) -> ModuleType:
    """
    Import C{scripts/<name>.py}, which is no package, as a module.
    """
    location = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(name, location)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def flush_brokers(brokers: Iterable[MemoryBroker]) -> None:
    """
    Let clients talk with every broker of a test until all are quiet (a
    client that fails over to another broker makes that one busy).
    """
    for _ in range(3):
        for broker in brokers:
            broker.flush()
