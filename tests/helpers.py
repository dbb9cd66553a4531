"""
Test helpers: a broker-side frame factory and a parser for what the client
sent.
"""

from __future__ import annotations

from typing import Any

from txamqp_next import _frames
from txamqp_next._connection import Connection, Credentials
from txamqp_next._methods import Method, MethodSet, methods_for
from txamqp_next.spec import Spec, load


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
