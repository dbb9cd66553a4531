# -*- test-case-name: tests.test_compile -*-
"""
Tests for the compiled codecs (L{txamqp_next._compile} and their use in
L{txamqp_next._methods}, L{txamqp_next._codec} and L{txamqp_next._frames}):
for every method and properties class of every spec, the compiled encoders
and decoders give the same bytes, values and errors as the reference
codecs; the unusual cases fall back to the reference; the frame reader
reads in bulk without copying a stream over and over.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.test_methods import (
    SPEC_NAMES,
    WIRE_STRATEGIES,
    _round_trip_settings,
    default_methods,
    load_spec,
    method_strategy,
    properties_strategy,
    tables,
    typed,
    typed_fields,
)
from txamqp_next import _codec, _compile, _frames
from txamqp_next._methods import _FLAG_DECODERS, Method, MethodSet, Properties, methods_for
from txamqp_next.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

ENVELOPE = struct.Struct(">BHI")


def framed(frame_type: int, channel: int, payload: bytes) -> bytes:
    return ENVELOPE.pack(frame_type, channel, len(payload)) + payload + b"\xce"


def outcome(call: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """
    What C{call(*args)} gives: C{("value", result)}, or C{("error", (type, reply
    code, text))} for one of our protocol errors.  Any other exception
    propagates.
    """
    try:
        result = call(*args)
    except ProtocolError as e:
        return "error", (type(e), e.reply_code, e.reply_text)
    if isinstance(result, (Method, Properties)):
        return "value", (type(result), typed_fields(result))
    if isinstance(result, tuple):
        return "value", tuple(
            (type(r), typed_fields(r)) if isinstance(r, Properties) else r for r in result
        )
    return "value", result


class MethodAgreementTests(SynchronousTestCase):
    """
    The compiled encoder and decoder of every method of every spec agree
    with the reference L{FieldCodec}, byte for byte and value for value.
    """

    def check(self, spec_name: str, ms: MethodSet, cls: type[Method]) -> None:
        @_round_trip_settings(spec_name, ours=25, theirs=5)
        @given(method_strategy(cls), st.integers(0, 65535))
        def agree(method: Method, channel: int) -> None:
            generic = method._encode_generic()
            self.assertEqual(method.encode(), generic)
            self.assertEqual(method.encode_frame(channel), framed(1, channel, generic))
            # called directly, the compiled decoder raises rather than fall back
            decoded = cls._decode(generic, len(generic))
            self.assertIs(type(decoded), cls)
            self.assertEqual(
                typed_fields(decoded), typed_fields(ms._decode_generic(generic)), cls.NAME
            )

        agree()

    def test_every_method(self) -> None:
        """
        For Hypothesis-drawn instances of every method class: C{encode()}
        and C{encode_frame()} give the reference bytes, and the compiled
        decoder reads them back to the reference values, without falling
        back.
        """
        checked = 0
        for name in SPEC_NAMES:
            ms = methods_for(load_spec(name))
            for cls in ms.by_name.values():
                self.check(name, ms, cls)
                checked += 1
        self.assertEqual(checked, 619)

    def test_truncated_and_padded(self) -> None:
        """
        For every method of the default spec, a payload cut at any offset
        or followed by an extra byte gets the reference decoder's error,
        with its reply code and text.
        """
        ms = default_methods()
        for cls in ms.by_name.values():
            fields = {}
            for f in cls.SPEC.fields:
                if not f.reserved:
                    fields[f.name] = {
                        "shortstr": "abc",
                        "longstr": b"xyz",
                        "table": {"k": "v", "n": 1},
                    }.get(f.type, 1 if f.type != "bit" else True)
            payload = cls(**fields).encode()
            for cut in range(len(payload)):
                piece = payload[:cut]
                expected = outcome(ms._decode_generic, piece, 3)
                self.assertEqual(expected[0], "error", (cls.NAME, cut))
                self.assertEqual(outcome(ms.decode, piece, 3), expected, (cls.NAME, cut))
            padded = payload + b"\x00"
            self.assertEqual(
                outcome(ms.decode, padded, 3),
                outcome(ms._decode_generic, padded, 3),
            )
            self.assertRaises(_compile.Fallback, cls._decode, padded, len(padded))

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.sampled_from(sorted(default_methods().by_key)), st.binary(max_size=60))
    def test_random_arguments(self, key: tuple[int, int], arguments: bytes) -> None:
        """
        Random bytes after real class and method ids decode, or fail, just
        as with the reference decoder.
        """
        ms = default_methods()
        payload = struct.pack(">HH", *key) + arguments
        self.assertEqual(outcome(ms.decode, payload), outcome(ms._decode_generic, payload))

    def test_unusual_values_fall_back(self) -> None:
        """
        Values the compiled encoder leaves to the reference codec (C{bytes}
        for a short string, a C{str} subclass, a C{datetime} timestamp)
        encode as the reference encodes them; values that do not fit get
        the reference's error.
        """
        ms = default_methods()

        class Text(str):
            pass

        publish = ms.Basic.Publish
        for method in (
            publish(exchange=b"raw", routing_key="k"),
            publish(exchange=Text("sub"), routing_key=b"\xff\xfe"),
            ms.Queue.Declare(queue="q", arguments={"x-max-length": 2**40, "": 1}),
        ):
            self.assertEqual(method.encode(), method._encode_generic())
            self.assertEqual(method.encode_frame(1), framed(1, 1, method._encode_generic()))
        for method in (
            publish(exchange="x" * 256),
            publish(exchange=3),
            ms.Basic.Ack(delivery_tag=-1),
            ms.Basic.Ack(delivery_tag=2**64),
            ms.Queue.Declare(arguments={1: 2}),
        ):
            expected = outcome(method._encode_generic)
            self.assertEqual(expected[0], "error")
            self.assertIs(expected[1][0], LocalProtocolError)
            self.assertEqual(outcome(method.encode), expected)
            self.assertEqual(outcome(method.encode_frame, 1), expected)

    def test_unknown_and_short(self) -> None:
        """
        Unknown method ids, a payload shorter than the ids, and buffers that
        are not C{bytes} go through the reference decoder.
        """
        ms = default_methods()
        for payload in (b"", b"\x00", b"\x00\x3c\x00", b"\x00\x3c\x03\xe7", b"\xff\xff\xff\xff"):
            self.assertEqual(
                outcome(ms.decode, payload, 2),
                outcome(ms._decode_generic, payload, 2),
            )
        ack = ms.Basic.Ack(delivery_tag=7, multiple=True)
        for buffer in (bytearray(ack.encode()), memoryview(ack.encode())):
            self.assertEqual(ms.decode(buffer), ack)

    def test_decoded_instances_are_ordinary(self) -> None:
        """
        An instance made by a compiled decoder is of the public class,
        frozen, and equal to one built by keywords.
        """
        ms = default_methods()
        deliver = ms.Basic.Deliver(consumer_tag="c", delivery_tag=5, routing_key="r")
        decoded = ms.decode(deliver.encode())
        self.assertIs(type(decoded), ms.Basic.Deliver)
        self.assertEqual(decoded, deliver)
        self.assertRaises(AttributeError, setattr, decoded, "delivery_tag", 6)
        self.assertRaises(AttributeError, setattr, decoded, "other", 6)
        self.assertEqual(decoded.replace(delivery_tag=6).delivery_tag, 6)

    def test_subclass_construction(self) -> None:
        """
        A subclass of a generated class builds instances of itself, with
        the fields set.
        """
        ms = default_methods()

        class Tagged(ms.Basic.Ack):  # type: ignore[name-defined,misc]
            __slots__ = ()

        ack = Tagged(delivery_tag=3)
        self.assertIs(type(ack), Tagged)
        self.assertEqual((ack.delivery_tag, ack.multiple), (3, False))

    def test_generated_source(self) -> None:
        """
        The generated source is kept on the class for reading: the publish
        encoder makes one join per frame and the deliver decoder slices
        short strings in place.
        """
        ms = default_methods()
        source = ms.Basic.Publish._source
        self.assertIn("def encode_frame(self, channel):", source)
        self.assertIn("_str_encode(self.exchange)", source)
        self.assertIn("e = p + 1 + buf[p]", ms.Basic.Deliver._source)


class PropertiesAgreementTests(SynchronousTestCase):
    """
    The compiled properties encoders and per-flag-pattern decoders agree
    with the reference L{PropertiesCodec}.
    """

    def check(self, spec_name: str, ms: MethodSet, class_id: int) -> None:
        cls = ms.properties[class_id]
        types = {f.name: f.type for f in ms.spec.class_by_id[class_id].properties}

        @_round_trip_settings(spec_name, ours=200, theirs=20)
        @given(properties_strategy(cls, types), st.integers(0, 2**64 - 1), st.integers(0, 65535))
        def agree(props: Properties, size: int, channel: int) -> None:
            generic = props._encode_header_generic(size)
            self.assertEqual(props.encode_header(size), generic)
            self.assertEqual(props.header_frame(channel, size), framed(2, channel, generic))
            self.assertEqual(
                outcome(ms.decode_header, generic),
                outcome(ms._decode_header_generic, generic),
            )

        agree()

    def test_every_properties_class(self) -> None:
        """
        For every content class of every spec and any subset of properties,
        the compiled C{encode_header} and C{header_frame} give the reference
        bytes and the compiled decoder the reference values.
        """
        checked = 0
        for name in SPEC_NAMES:
            ms = methods_for(load_spec(name))
            for class_id in ms.properties:
                self.check(name, ms, class_id)
                checked += 1
        # see tests.test_methods.RoundTripTests.test_every_properties_class
        self.assertEqual(checked, 22)

    def test_basic_golden(self) -> None:
        """
        The bench's properties encode to the bytes worked out by hand, and
        the compiled decoder for their flag pattern reads them back.
        """
        ms = default_methods()
        props = ms.Basic.Properties(
            content_type="text/plain", delivery_mode=2, headers={"a": 1}, message_id="m1"
        )
        table = b"\x00\x00\x00\x07\x01aI\x00\x00\x00\x01"
        expected = (
            b"\x00\x3c\x00\x00" + struct.pack(">Q", 100) + b"\xb0\x80"
            b"\x0atext/plain" + table + b"\x02" + b"\x02m1"
        )
        self.assertEqual(props.encode_header(100), expected)
        decode = ms.Basic.Properties._compile_decoder(0xB080)
        self.assertEqual(decode(expected, len(expected)), props)

    def test_no_properties_shared(self) -> None:
        """
        A header with no property flagged decodes, for every class of every
        spec, to one object, equal to the reference's and immutable; with
        trailing bytes it is refused as the reference refuses it.
        """
        shared = 0
        for name in SPEC_NAMES:
            ms = methods_for(load_spec(name))
            for class_id, cls in ms.properties.items():
                header = struct.pack(">HHQH", class_id, 0, 7, 0)
                first, second = ms.decode_header(header), ms.decode_header(header)
                self.assertEqual(first, ms._decode_header_generic(header))
                self.assertEqual(
                    outcome(ms.decode_header, header + b"x"),
                    outcome(ms._decode_header_generic, header + b"x"),
                )
                self.assertIs(first[2], second[2])
                for field_name in cls.field_names:
                    self.assertRaises(AttributeError, setattr, first[2], field_name, "x")
                shared += 1
        self.assertEqual(shared, 22)

    def test_flags_left_to_the_reference(self) -> None:
        """
        A continuation bit, or a flag for a property the class lacks, is
        never compiled: the reference decoder reports it.
        """
        ms = default_methods()
        cls = ms.Basic.Properties
        self.assertRaises(_compile.Fallback, cls._compile_decoder, 0x8001)
        # basic has 14 properties: bits 1 and 0 name none
        self.assertRaises(_compile.Fallback, cls._compile_decoder, 0x0002)
        header = b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x00\x02"
        self.assertEqual(
            outcome(ms.decode_header, header),
            outcome(ms._decode_header_generic, header),
        )
        self.assertEqual(outcome(ms.decode_header, header)[0], "error")

    def test_decoders_bounded(self) -> None:
        """
        A peer sending ever new flag patterns compiles at most
        L{_FLAG_DECODERS} decoders per class; the rest are still decoded
        right, by the reference decoder.
        """
        ms = methods_for(load_spec("0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"))
        cls = ms.properties[60]
        # octet properties only, in any combination: delivery-mode (bit
        # 12) and priority (bit 11), plus any of the short strings
        for pattern in range(600):
            props = cls(
                delivery_mode=pattern % 256 if pattern & 1 else None,
                priority=(pattern >> 1) % 256 if pattern & 2 else None,
                **{
                    name: str(pattern)
                    for bit, name in enumerate(
                        (
                            "correlation_id",
                            "reply_to",
                            "expiration",
                            "message_id",
                            "type",
                            "user_id",
                            "app_id",
                            "content_type",
                            "content_encoding",
                        )
                    )
                    if pattern & (4 << bit)
                },
            )
            payload = props.encode_header(pattern)
            self.assertEqual(ms.decode_header(payload), (60, pattern, props))
        self.assertLessEqual(len(cls._flag_decoders), _FLAG_DECODERS)
        self.assertGreater(len(cls._flag_decoders), 100)

    def test_unusual_values_fall_back(self) -> None:
        """
        C{bytes} short strings and C{datetime} timestamps encode as the
        reference encodes them; a value that does not fit gets its error.
        """
        from datetime import datetime, timezone

        ms = default_methods()
        props = ms.Basic.Properties
        ok = props(
            content_type=b"raw",
            timestamp=datetime(2020, 1, 1, tzinfo=timezone.utc),
            headers={"big": 2**40, "nested": {"a": [1, "b"]}},
        )
        self.assertEqual(ok.encode_header(5), ok._encode_header_generic(5))
        self.assertEqual(ok.header_frame(9, 5), framed(2, 9, ok._encode_header_generic(5)))
        for bad, size in ((props(priority=256), 0), (props(content_type=3), 0), (props(), -1)):
            expected = outcome(bad._encode_header_generic, size)
            self.assertEqual(expected[0], "error")
            self.assertEqual(outcome(bad.encode_header, size), expected)
            self.assertEqual(outcome(bad.header_frame, 1, size), expected)

    def test_truncated_and_padded(self) -> None:
        """
        A content header cut at any offset, or with a byte too many, gets
        the reference decoder's error.
        """
        ms = default_methods()
        props = ms.Basic.Properties(
            content_type="a", headers={"k": "v"}, delivery_mode=1, timestamp=7, app_id="x"
        )
        payload = props.encode_header(3)
        for piece in [payload[:cut] for cut in range(len(payload))] + [payload + b"\x00"]:
            expected = outcome(ms._decode_header_generic, piece, 4)
            self.assertEqual(expected[0], "error")
            self.assertEqual(outcome(ms.decode_header, piece, 4), expected)


class TableFastPathTests(SynchronousTestCase):
    """
    L{_codec._common_table}, the fast path of L{_codec.encode_table}, agrees
    with the reference L{_codec._table}.
    """

    @settings(max_examples=300, deadline=None, database=None)
    @given(tables)
    def test_same_bytes(self, table: dict[str, Any]) -> None:
        """
        Any table encodes to the reference bytes and decodes back.
        """
        data = _codec.encode_table(table)
        self.assertEqual(data, _codec._table(table, 1) if table else b"\x00\x00\x00\x00")
        self.assertEqual(typed(_codec.decode_table(data, 0)[0]), typed(table))

    def test_headers_golden(self) -> None:
        """
        The common header values get their usual wire types.
        """
        self.assertEqual(
            _codec.encode_table({"s": "ab", "i": -2, "t": True}),
            b"\x00\x00\x00\x14\x01sS\x00\x00\x00\x02ab\x01iI\xff\xff\xff\xfe\x01tt\x01",
        )

    def test_errors_from_the_reference(self) -> None:
        """
        What the fast path cannot encode gets the reference's error.
        """
        for table in ({1: 2}, {"k" * 256: 1}, {"k": 2**64}, {"k": object()}, {"\ud800": 1}):
            with self.assertRaises(LocalProtocolError) as caught:
                _codec.encode_table(table)
            with self.assertRaises(LocalProtocolError) as reference:
                _codec._table(table, 1)
            self.assertEqual(caught.exception.reply_text, reference.exception.reply_text)

    def test_long_string_decoding(self) -> None:
        """
        The inlined long string case of table decoding keeps the reference
        rules: text when UTF-8, bytes otherwise or with C{raw_strings}, and
        a length past the table's end is an error.
        """
        data = _codec.encode_table({"a": "é", "b": b"\xff"})
        data = data.replace(b"bx", b"bS")
        self.assertEqual(_codec.decode_table(data, 0)[0], {"a": "é", "b": b"\xff"})
        raw = _codec.decode_table(data, 0, raw_strings=True)[0]
        self.assertEqual(raw, {"a": "é".encode(), "b": b"\xff"})
        bad = b"\x00\x00\x00\x08\x01aS\x00\x00\x00\x09"
        with self.assertRaises(RemoteProtocolError) as caught:
            _codec.decode_table(bad, 0)
        self.assertEqual(caught.exception.reply_code, 502)
        self.assertIn("runs past the end", caught.exception.reply_text)


class FrameReaderBulkTests(SynchronousTestCase):
    """
    L{_frames.FrameReader.read_frames} returns every whole frame at once
    and copies bytes a bounded number of times however the stream is cut.
    """

    def test_all_frames_at_once(self) -> None:
        """
        Three frames in one chunk come back together, and an incomplete
        fourth stays buffered.
        """
        stream = framed(1, 1, b"m") + framed(2, 1, b"h" * 20) + framed(3, 1, b"b" * 5)
        reader = _frames.FrameReader()
        reader.feed(stream + framed(3, 1, b"rest")[:6])
        self.assertEqual(reader.read_frames(), [(1, 1, b"m"), (2, 1, b"h" * 20), (3, 1, b"b" * 5)])
        self.assertEqual(reader.buffered, 6)
        self.assertEqual(reader.read_frames(), [])
        reader.feed(framed(3, 1, b"rest")[6:])
        self.assertEqual(reader.read_frames(), [(3, 1, b"rest")])
        self.assertEqual(reader.buffered, 0)

    def test_good_frames_before_a_bad_one(self) -> None:
        """
        The frames before a malformed one are returned first; the next call
        raises the error.
        """
        reader = _frames.FrameReader()
        reader.feed(framed(1, 1, b"ok") + ENVELOPE.pack(9, 1, 0) + b"\xce")
        self.assertEqual(reader.read_frames(), [(1, 1, b"ok")])
        with self.assertRaises(RemoteProtocolError) as caught:
            reader.read_frames()
        self.assertEqual(caught.exception.reply_code, 501)
        self.assertIn("unknown frame type 9", caught.exception.reply_text)

    def test_same_frames_however_cut(self) -> None:
        """
        A stream of frames cut at every offset into two chunks, or fed byte
        by byte, gives the same frames.
        """
        frames = [(1, 1, b"method"), (2, 1, b"x" * 30), (3, 1, b""), (8, 0, b""), (3, 2, b"z")]
        stream = b"".join(framed(*f) for f in frames)
        for cut in range(len(stream) + 1):
            reader = _frames.FrameReader()
            got = []
            for chunk in (stream[:cut], stream[cut:]):
                reader.feed(chunk)
                got += reader.read_frames()
            self.assertEqual(got, frames, cut)
        reader = _frames.FrameReader()
        got = []
        for i in range(len(stream)):
            reader.feed(stream[i : i + 1])
            frame = reader.next_frame()
            if frame is not _frames.NEED_DATA:
                got.append(frame)
        self.assertEqual(got, frames)

    def test_big_frame_in_small_chunks_joined_once(self) -> None:
        """
        A 1 MiB frame arriving in 4 KiB chunks is joined once, when its last
        chunk is in, not copied again on every chunk.
        """
        payload = bytes(range(256)) * 4096
        stream = framed(3, 1, payload)
        reader = _frames.FrameReader(0)
        joins = []
        original = reader._join

        def counting_join() -> None:
            joins.append(reader.buffered)
            original()

        reader._join = counting_join  # type: ignore[method-assign]
        for start in range(0, len(stream), 4096):
            reader.feed(stream[start : start + 4096])
            frames = reader.read_frames()
        self.assertEqual(frames, [(3, 1, payload)])
        self.assertEqual(joins, [len(stream)])

    def test_oversized_header_refused_before_payload(self) -> None:
        """
        A header claiming more than C{frame_max} is refused as soon as its
        7 bytes are in, even split across chunks.
        """
        reader = _frames.FrameReader(4096)
        header = ENVELOPE.pack(3, 1, 10**9)
        reader.feed(header[:3])
        self.assertEqual(reader.read_frames(), [])
        reader.feed(header[3:])
        with self.assertRaises(RemoteProtocolError) as caught:
            reader.read_frames()
        self.assertEqual(caught.exception.reply_code, 501)

    def test_other_buffers(self) -> None:
        """
        C{bytearray} and C{memoryview} chunks are accepted; payloads are
        C{bytes}.
        """
        reader = _frames.FrameReader()
        data = framed(1, 1, b"abc")
        reader.feed(bytearray(data[:5]))
        reader.feed(memoryview(data)[5:])
        ((_, _, payload),) = reader.read_frames()
        self.assertIs(type(payload), bytes)
        self.assertEqual(payload, b"abc")

    def test_body_frames(self) -> None:
        """
        A body is split at C{frame_max}; one that fits is one string; an
        empty body has no frame.
        """
        self.assertEqual(_frames.body_frames(1, b"", 100), [])
        self.assertEqual(_frames.body_frames(1, b"abc", 0), [framed(3, 1, b"abc")])
        self.assertEqual(_frames.body_frames(1, b"x" * 92, 100), [framed(3, 1, b"x" * 92)])
        parts = _frames.body_frames(1, bytearray(b"x" * 93), 100)
        self.assertEqual(b"".join(parts), framed(3, 1, b"x" * 92) + framed(3, 1, b"x"))


class WireStrategiesTests(SynchronousTestCase):
    """
    The strategies this module borrows cover every wire type.
    """

    def test_every_type(self) -> None:
        """
        Each wire type the codecs know has a strategy.
        """
        self.assertEqual(set(WIRE_STRATEGIES), set(_codec.FIELD_TYPES))


class EventMakerTests(SynchronousTestCase):
    """
    The connection's fast event constructors build the same frozen events
    as the dataclasses' own constructors.
    """

    def test_same_events(self) -> None:
        """
        C{content_received}, C{method_received} and C{reply_received} give
        instances of the public classes, equal to and shown like the usual
        ones, and frozen.
        """
        from dataclasses import FrozenInstanceError

        from txamqp_next._events import (
            ContentReceived,
            MethodReceived,
            ReplyReceived,
            content_received,
            method_received,
            reply_received,
        )

        ms = default_methods()
        ack = ms.Basic.Ack(delivery_tag=1)
        props = ms.Basic.Properties(content_type="t")
        made = content_received(3, ack, props, b"body")
        usual = ContentReceived(3, ack, props, b"body")
        self.assertIs(type(made), ContentReceived)
        self.assertEqual(made, usual)
        self.assertEqual(repr(made), repr(usual))
        self.assertRaises(FrozenInstanceError, setattr, made, "body", b"")
        other = method_received(2, ack)
        self.assertIs(type(other), MethodReceived)
        self.assertEqual((other.channel, other.method), (2, ack))
        self.assertEqual(other, MethodReceived(2, ack))
        self.assertRaises(FrozenInstanceError, setattr, other, "channel", 1)
        get_ok = ms.Basic.GetOk(delivery_tag=4)
        reply = reply_received(5, get_ok, props, b"got")
        self.assertIs(type(reply), ReplyReceived)
        self.assertEqual(reply, ReplyReceived(5, get_ok, props, b"got"))
        self.assertEqual(repr(reply), repr(ReplyReceived(5, get_ok, props, b"got")))
        self.assertEqual(reply_received(1, ack, None, b""), ReplyReceived(1, ack))
        self.assertRaises(FrozenInstanceError, setattr, reply, "body", b"")
