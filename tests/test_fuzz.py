# -*- test-case-name: tests.test_fuzz -*-
"""
Hypothesis fuzzing of the sans-IO core, L{txamqp_next._connection}.

Whatever the broker sends, after the handshake and with a channel open:

  - the only exception out of C{receive_data} is L{RemoteProtocolError};
  - after one, the connection is closed, a C{connection.close} with the
    error's reply code is queued, and further input is ignored;
  - the frame reader never holds more than one incomplete frame (at most
    C{frame_max} bytes) plus the last chunk fed;
  - a valid stream gives the same events however it is cut.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import FrameFactory, open_channel, open_connection
from tests.test_methods import reference_spec
from txamqp_next import _frames
from txamqp_next._connection import Connection, ConnectionState
from txamqp_next._events import Event
from txamqp_next._methods import Method, methods_for
from txamqp_next.errors import LocalProtocolError, RemoteProtocolError
from txamqp_next.spec import load

# A small frame_max, so that fuzzed frames can come close to it and bodies
# split into many frames.
FRAME_MAX = 4096

CHANNEL = 1

fuzz_settings = settings(max_examples=600, deadline=None)


def opened(**kwargs: Any) -> Connection:
    """
    A connection through the handshake with C{frame_max} L{FRAME_MAX} and
    channel L{CHANNEL} open, with nothing left to send.

    @param kwargs: more parameters for L{Connection}.
    """
    conn, factory, parser = open_connection(
        tune={"frame_max": FRAME_MAX}, frame_max=FRAME_MAX, **kwargs
    )
    if open_channel(conn, factory, parser) != CHANNEL:
        raise AssertionError("the first channel opened is not 1")
    conn.data_to_send()
    return conn


def valid_stream() -> bytes:
    """
    What a broker may send on an open connection with channel 1 open:
    deliveries (bodies in several frames, an empty body, properties with
    headers), a confirm ack, flow control, heartbeats and blocked/unblocked.
    """
    factory = FrameFactory()
    return b"".join(
        [
            factory.content(
                CHANNEL,
                "basic.deliver",
                bytes(range(256)) + b"tail",
                frame_max=100,
                consumer_tag="ctag",
                delivery_tag=1,
                routing_key="rk",
            ),
            factory.method(CHANNEL, "basic.ack", delivery_tag=7, multiple=True),
            _frames.HEARTBEAT,
            factory.method(CHANNEL, "channel.flow", active=False),
            factory.method(0, "connection.blocked", reason="low on memory"),
            factory.content(
                CHANNEL,
                "basic.deliver",
                b"x" * 150,
                frame_max=64,
                properties={
                    "content_type": "application/json",
                    "delivery_mode": 2,
                    "headers": {"retries": 3, "trace": ["a", 1.5, None], "nested": {"ok": True}},
                    "timestamp": 1_700_000_000,
                },
                consumer_tag="ctag",
                delivery_tag=2,
                redelivered=True,
            ),
            factory.method(CHANNEL, "channel.flow", active=True),
            factory.content(CHANNEL, "basic.deliver", b"", consumer_tag="ctag", delivery_tag=3),
            _frames.HEARTBEAT,
            factory.method(0, "connection.unblocked"),
            factory.method(CHANNEL, "basic.nack", delivery_tag=8),
        ]
    )


VALID = valid_stream()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """
    C{data} cut at the given offsets (taken modulo its length plus one).
    """
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


cut_lists = st.lists(st.integers(0, 2**20), max_size=12)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """
    C{data} with a few bytes flipped, inserted or deleted.
    """
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = draw(st.integers(0, len(out)))
        if op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif pos < len(out):
            if op == "flip":
                out[pos] ^= 1 << draw(st.integers(0, 7))
            else:
                del out[pos : pos + draw(st.integers(1, 8))]
    return bytes(out)


_METHODS = methods_for(load())
_METHOD_KEYS = sorted(_METHODS.by_key)


def envelope(frame_type: int, channel: int, payload: bytes) -> bytes:
    """
    A well-formed frame around any payload.
    """
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


# Mostly the open channel or channel 0; sometimes one that is not open.
channels = st.sampled_from([0, CHANNEL, CHANNEL, CHANNEL, CHANNEL, 2, 65535])

# Method frames with real class and method ids and random argument bytes.
method_frames = st.builds(
    lambda channel, key, args: envelope(
        _frames.FRAME_METHOD, channel, struct.pack(">HH", *key) + args
    ),
    channels,
    st.sampled_from(_METHOD_KEYS),
    st.binary(max_size=64),
)

# Content headers with a random class, body size, property flags and values.
header_frames = st.builds(
    lambda channel, class_id, size, flags, rest: envelope(
        _frames.FRAME_HEADER, channel, struct.pack(">HHQH", class_id, 0, size, flags) + rest
    ),
    channels,
    st.sampled_from([60, 60, 10, 20]) | st.integers(0, 65535),
    st.integers(0, 300) | st.integers(0, 2**64 - 1),
    st.integers(0, 65535),
    st.binary(max_size=64),
)

body_frames = st.builds(
    lambda channel, body: envelope(_frames.FRAME_BODY, channel, body),
    channels,
    st.binary(max_size=300),
)

# Every method the spec has, with default arguments: well-formed, but mostly
# out of turn.
default_method_frames = st.builds(
    lambda channel, cls: envelope(_frames.FRAME_METHOD, channel, cls().encode()),
    channels,
    st.sampled_from([_METHODS.by_key[key] for key in _METHOD_KEYS]),
)

# A delivery whose content header has random property flags and values.
random_header_deliveries = st.builds(
    lambda size, flags, rest, bodies: b"".join(
        [
            envelope(_frames.FRAME_METHOD, CHANNEL, _METHODS.Basic.Deliver().encode()),
            envelope(
                _frames.FRAME_HEADER, CHANNEL, struct.pack(">HHQH", 60, 0, size, flags) + rest
            ),
            *(envelope(_frames.FRAME_BODY, CHANNEL, body) for body in bodies),
        ]
    ),
    st.integers(0, 100),
    st.integers(0, 65535),
    st.binary(max_size=64),
    st.lists(st.binary(max_size=60), max_size=3),
)

frames = st.one_of(
    method_frames,
    default_method_frames,
    header_frames,
    random_header_deliveries,
    body_frames,
    st.just(_frames.HEARTBEAT),
    st.just(VALID),
)


class FuzzTests(SynchronousTestCase):
    """
    Hostile or garbled input never gets anything but a
    L{RemoteProtocolError} out of the core, and never makes it buffer
    without bound.
    """

    def feed(self, conn: Connection, chunks: list[bytes]) -> RemoteProtocolError | None:
        """
        Feed C{chunks} one by one, checking the invariants after each.

        @return: the error that closed the connection, if any.  Any other
            exception propagates and fails the test.
        """
        reader = conn._reader
        for chunk in chunks:
            try:
                conn.receive_data(chunk)
            except RemoteProtocolError as e:
                self.check_closed_after(conn, e)
                return e
            self.assertLessEqual(reader.buffered, reader.frame_max + 7 + len(chunk))
            if conn.state is not ConnectionState.CLOSED:
                # all that is left is one incomplete frame
                self.assertLess(reader.buffered, reader.frame_max)
        return None

    def check_closed_after(self, conn: Connection, error: RemoteProtocolError) -> None:
        """
        After a protocol error the connection is closed, has told the broker
        why, and ignores anything more.
        """
        self.assertIs(conn.state, ConnectionState.CLOSED)
        self.assertIs(conn.error, error)
        self.assertEqual(last_method_sent(conn).NAME, "connection.close")
        self.assertEqual(conn.receive_data(VALID), [])
        self.assertEqual(conn.receive_data(b"\x01\x00"), [])
        self.assertEqual(conn.data_to_send(), b"")

    @fuzz_settings
    @given(st.binary(max_size=3000), cut_lists)
    def test_random_bytes(self, data: bytes, cuts: list[int]) -> None:
        """
        Random bytes fed in random chunks.
        """
        self.feed(opened(), split(data, cuts))

    @fuzz_settings
    @given(mutated(VALID), cut_lists)
    def test_mutated_stream(self, data: bytes, cuts: list[int]) -> None:
        """
        A valid stream with bytes flipped, inserted or deleted, fed whole or
        in random chunks.
        """
        self.feed(opened(), split(data, cuts))

    @fuzz_settings
    @given(st.lists(frames, min_size=1, max_size=8), cut_lists)
    def test_random_frames(self, stream: list[bytes], cuts: list[int]) -> None:
        """
        Well-formed frame envelopes with random payloads: method frames with
        real class and method ids and random arguments, content headers with
        random property flags, bodies, heartbeats, mixed with valid traffic.
        """
        self.feed(opened(), split(b"".join(stream), cuts))

    @fuzz_settings
    @given(st.integers(FRAME_MAX - 16, FRAME_MAX) | st.integers(0, 2**32 - 1), st.integers(1, 500))
    def test_claimed_frame_sizes(self, size: int, step: int) -> None:
        """
        A frame header claiming more than C{frame_max} bytes is refused
        (501) before its payload is buffered; a frame within it is buffered
        whole until its end octet comes.
        """
        conn = opened()
        data = struct.pack(">BHI", _frames.FRAME_BODY, CHANNEL, size) + b"\0" * min(size, FRAME_MAX)
        error = self.feed(conn, [data[i : i + step] for i in range(0, len(data), step)])
        if size + 8 > FRAME_MAX:
            assert error is not None
            self.assertEqual(error.reply_code, 501)
        else:
            self.assertIsNone(error)
            self.assertEqual(conn._reader.buffered, 7 + size)


class ChunkingTests(SynchronousTestCase):
    """
    The valid stream gives the same events and the same replies however it
    is cut.
    """

    def run_stream(self, chunks: list[bytes]) -> tuple[list[Event], bytes]:
        conn = opened()
        events: list[Event] = []
        for chunk in chunks:
            events += conn.receive_data(chunk)
        self.assertIs(conn.state, ConnectionState.OPEN)
        self.assertEqual(conn._reader.buffered, 0)
        return events, conn.data_to_send()

    def test_whole(self) -> None:
        """
        Fed whole, the stream gives the events it was built from: three
        deliveries and the methods between them.
        """
        events, sent = self.run_stream([VALID])
        names = [e.method.NAME for e in events]  # type: ignore[attr-defined]
        self.assertEqual(
            names,
            [
                "basic.deliver",
                "basic.ack",
                "channel.flow",
                "connection.blocked",
                "basic.deliver",
                "channel.flow",
                "basic.deliver",
                "connection.unblocked",
                "basic.nack",
            ],
        )
        self.assertEqual(events[0].body, bytes(range(256)) + b"tail")  # type: ignore[attr-defined]
        self.assertEqual(events[4].properties.headers["nested"], {"ok": True})  # type: ignore[attr-defined]
        self.assertEqual(
            [m.NAME for m in sent_methods(sent)], ["channel.flow-ok", "channel.flow-ok"]
        )

    @settings(max_examples=150, deadline=None)
    @given(cut_lists)
    def test_any_chunking(self, cuts: list[int]) -> None:
        """
        Cut anywhere, any number of times, the stream gives the same events
        and sends the same replies as fed whole.
        """
        expected = self.run_stream([VALID])
        self.assertEqual(self.run_stream(split(VALID, cuts)), expected)


def sent_methods(data: bytes) -> list[Method]:
    """
    Decode the method frames in bytes the client wrote (after its
    protocol header).
    """
    ms = methods_for(load())
    reader = _frames.FrameReader(0)
    reader.feed(data)
    out: list[Any] = []
    while True:
        frame = reader.next_frame()
        if frame is _frames.NEED_DATA:
            return out
        assert isinstance(frame, tuple)
        if frame[0] == _frames.FRAME_METHOD:
            out.append(ms.decode(frame[2]))


def last_method_sent(conn: Connection) -> Method:
    return sent_methods(conn.data_to_send())[-1]


# Well-formed messages with content, bodies of any size cut at any frame
# size, a few properties: deliveries, returns and get-oks.
content_messages = st.builds(
    lambda name, body, frame_max, properties: FrameFactory().content(
        CHANNEL, name, body, frame_max=frame_max, properties=properties
    ),
    st.sampled_from(
        ["basic.deliver", "basic.deliver", "basic.return", "basic.get-ok", "basic.publish"]
    ),
    st.binary(max_size=300),
    st.integers(9, FRAME_MAX),
    st.fixed_dictionaries(
        {},
        optional={
            "correlation_id": st.text(max_size=10),
            "reply_to": st.text(max_size=10),
            "headers": st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=2),
            "delivery_mode": st.integers(1, 2),
        },
    ),
)

# A content method and header announcing C{size} bytes, then body frames
# of lengths around it: empty, whole, half, one too many.
odd_bodies = st.integers(0, 20).flatmap(
    lambda size: st.builds(
        lambda name, headers, lengths: b"".join(
            [
                envelope(_frames.FRAME_METHOD, CHANNEL, _METHODS[name]().encode()),
                *[
                    envelope(
                        _frames.FRAME_HEADER,
                        CHANNEL,
                        _METHODS.properties[60]().encode_header(size),
                    )
                ]
                * headers,
                *(envelope(_frames.FRAME_BODY, CHANNEL, b"b" * n) for n in lengths),
            ]
        ),
        st.sampled_from(["basic.deliver", "basic.get-ok"]),
        st.sampled_from([1, 1, 1, 0, 2]),
        st.lists(st.sampled_from([0, size, size // 2, size + 1]), max_size=3),
    )
)

#: what the channel is doing when the frames come (see L{prepared})
SETUPS = ["none", "get", "get queued", "queued", "closing", "small cap"]


def prepared(setup: str, inline: bool) -> Connection:
    """
    L{opened}, then: C{"get"}, a C{basic.get} waits for its reply (a reply
    with content); C{"get queued"}, the same with a C{basic.qos} queued
    behind it; C{"queued"}, a C{queue.declare} waits with a C{basic.qos}
    queued behind it; C{"closing"}, our C{channel.close} waits
    for its C{close-ok}; C{"small cap"}, messages over 50 bytes are
    refused.  C{inline} turns the core's inlined common cases on or off.
    """
    conn = opened(max_message_size=50) if setup == "small cap" else opened()
    conn._inline_content = inline
    if setup in ("get", "get queued"):
        conn.send_method(CHANNEL, _METHODS["basic.get"](queue="q"))
        if setup == "get queued":
            conn.send_method(CHANNEL, _METHODS["basic.qos"](prefetch_count=1))
    elif setup == "queued":
        conn.send_method(CHANNEL, _METHODS["queue.declare"](queue="q"))
        conn.send_method(CHANNEL, _METHODS["basic.qos"](prefetch_count=1))
    elif setup == "closing":
        conn.send_method(CHANNEL, _METHODS["channel.close"](reply_code=200, reply_text="bye"))
    conn.data_to_send()
    return conn


def outcome(conn: Connection, chunk: bytes) -> tuple[Any, ...]:
    """
    What feeding C{chunk} did: the events (errors by type, code and text)
    or the protocol error, then the connection's and the channel's state,
    and what it has to send.
    """
    try:
        result: Any = [describe(e) for e in conn.receive_data(chunk)]
    except RemoteProtocolError as e:
        result = ("error", describe_error(e))
    ch = conn._channels.get(CHANNEL)
    channel = None
    if ch is not None:
        channel = (
            ch.state,
            ch.awaiting,
            list(ch.pending or ()),
            ch.content_method,
            ch.content_reply,
            ch.content_properties,
            ch.content_size,
            ch.content_received,
            [bytes(piece) for piece in ch.content_body],
        )
    return result, conn.state, channel, conn.data_to_send()


def close(conn: Connection) -> tuple[Any, ...]:
    """
    Close channel L{CHANNEL}, if the core lets us: what it sent, or the
    error that refused it.
    """
    try:
        conn.send_method(CHANNEL, _METHODS["channel.close"](reply_code=200, reply_text="bye"))
    except LocalProtocolError as e:
        return describe_error(e)
    return (conn.data_to_send(),)


def describe(event: Event) -> tuple[Any, ...]:
    values = [getattr(event, name) for name in event.__slots__]  # type: ignore[attr-defined]
    return (
        type(event).__name__,
        *[describe_error(v) if isinstance(v, Exception) else v for v in values],
    )


def describe_error(error: Exception) -> tuple[Any, ...]:
    return type(error), getattr(error, "reply_code", None), str(error)


class InlineTests(SynchronousTestCase):
    """
    The common cases of a message's frames that C{receive_data} handles
    itself (a content method that answers nothing, its header, a body in
    one frame) do what the handlers it would otherwise call do, whatever
    the frames and the channel's state: the same events, errors, states
    and frames sent, chunk by chunk.
    """

    @fuzz_settings
    @given(
        st.sampled_from(SETUPS),
        st.lists(content_messages | frames, min_size=1, max_size=8),
        cut_lists,
    )
    def test_same_as_handlers(self, setup: str, stream: list[bytes], cuts: list[int]) -> None:
        inlined, reference = prepared(setup, True), prepared(setup, False)
        for chunk in split(b"".join(stream), cuts):
            self.assertEqual(outcome(inlined, chunk), outcome(reference, chunk))

    @fuzz_settings
    @given(
        st.sampled_from(SETUPS),
        st.lists(content_messages | odd_bodies, min_size=1, max_size=6),
        cut_lists,
        st.none() | st.integers(0, 12),
    )
    def test_messages_same_as_handlers(
        self, setup: str, stream: list[bytes], cuts: list[int], close_at: int | None
    ) -> None:
        """
        The same, with messages only (well-formed, or with body frames
        that do not add up), the channel closed by us before the chunk
        C{close_at} if it comes.
        """
        inlined, reference = prepared(setup, True), prepared(setup, False)
        for index, chunk in enumerate(split(b"".join(stream), cuts)):
            if index == close_at:
                self.assertEqual(close(inlined), close(reference))
            self.assertEqual(outcome(inlined, chunk), outcome(reference, chunk))

    def test_large_body_in_one_frame(self) -> None:
        """
        A body frame of 4 KiB or more comes from the frame reader as a view
        of the received data: the body handed out is still C{bytes}, equal
        to the handlers' in every way.
        """
        factory = FrameFactory()
        body = bytes(range(256)) * 40
        data = factory.deliver(CHANNEL, "c", 1, body)
        conns = []
        for inline in (True, False):
            conn, _, parser = open_connection()
            open_channel(conn, factory, parser)
            conn._inline_content = inline
            conns.append(conn)
        inlined, reference = (outcome(conn, data) for conn in conns)
        self.assertEqual(inlined, reference)
        self.assertIs(type(inlined[0][0][-1]), bytes)
        self.assertEqual(inlined[0][0][-1], body)

    def test_closed_between_header_and_body(self) -> None:
        """
        A body that comes after we closed the channel, its method and
        header before, is dropped the same way.
        """
        data = FrameFactory().deliver(CHANNEL, "c", 1, b"body")
        body_at = len(data) - len(b"body") - 8
        outcomes = []
        for inline in (True, False):
            conn = prepared("none", inline)
            outcomes.append(
                (outcome(conn, data[:body_at]), close(conn), outcome(conn, data[body_at:]))
            )
        self.assertEqual(outcomes[0], outcomes[1])
        self.assertEqual(outcomes[0][2][0], [])

    def test_header_of_another_class(self) -> None:
        """
        On a spec with more than one class with content (0-8's C{file} and
        C{stream}), a header of another class than its method's is refused
        the same way.
        """
        spec_08 = reference_spec("0-8/amqp0-8.stripped.xml")
        outcomes = []
        for inline in (True, False):
            conn, factory, parser = open_connection(spec=spec_08)
            open_channel(conn, factory, parser)
            conn._inline_content = inline
            methods = factory.methods
            data = b"".join(
                [
                    factory.method(CHANNEL, "basic.deliver", consumer_tag="c", delivery_tag=1),
                    envelope(
                        _frames.FRAME_HEADER, CHANNEL, methods.properties[70]().encode_header(4)
                    ),
                    envelope(_frames.FRAME_BODY, CHANNEL, b"body"),
                ]
            )
            outcomes.append(outcome(conn, data))
        self.assertEqual(outcomes[0], outcomes[1])
        self.assertEqual(outcomes[0][0][0], "error")

    def test_inlined_cases_taken(self) -> None:
        """
        A delivery fed whole to an idle open channel takes the inlined
        cases: the handlers are not called.
        """
        conn = prepared("none", True)
        called: list[str] = []
        for name in ("_handle_channel_method", "_handle_header", "_handle_body"):
            setattr(conn, name, lambda *args, name=name: called.append(name))
        data = FrameFactory().deliver(CHANNEL, "c", 1, b"body", {"reply_to": "r"})
        (event,) = conn.receive_data(data)
        self.assertEqual((event.body, called), (b"body", []))  # type: ignore[attr-defined]
