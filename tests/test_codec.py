"""
Tests for L{txamqp_next._codec}: golden bytes, round trips and hostile input.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txamqp_next._codec import (
    FIELD_TYPES,
    MAX_DEPTH,
    FieldCodec,
    PropertiesCodec,
    decode_array,
    decode_table,
    encode_array,
    encode_table,
    field_codec,
)
from txamqp_next.errors import LocalProtocolError, RemoteProtocolError

examples = settings(max_examples=200, deadline=None)

BASIC_PROPERTIES = (
    "shortstr",  # content-type
    "shortstr",  # content-encoding
    "table",  # headers
    "octet",  # delivery-mode
    "octet",  # priority
    "shortstr",  # correlation-id
    "shortstr",  # reply-to
    "shortstr",  # expiration
    "shortstr",  # message-id
    "timestamp",  # timestamp
    "shortstr",  # type
    "shortstr",  # user-id
    "shortstr",  # app-id
    "shortstr",  # reserved (cluster-id)
)
DELIVER = ("shortstr", "longlong", "bit", "shortstr", "shortstr")
ACK = ("longlong", "bit")

# 20 properties: two flag words
SYNTHETIC_PROPERTIES = (
    "shortstr",
    "octet",
    "bit",
    "short",
    "long",
    "longlong",
    "timestamp",
    "longstr",
    "table",
    "shortstr",
    "bit",
    "octet",
    "shortstr",
    "short",
    "shortstr",
    "long",
    "bit",
    "table",
    "shortstr",
    "longstr",
)

UTC = timezone.utc
U32 = struct.Struct(">I")


def sized(body: bytes) -> bytes:
    """
    C{body} with its 4-byte length in front.
    """
    return U32.pack(len(body)) + body


def entry(key: bytes, kind: bytes, value: bytes) -> bytes:
    """
    The bytes of one field table entry.
    """
    return bytes((len(key),)) + key + kind + value


def nested_tables(levels: int) -> bytes:
    """
    C{levels} tables, each the only value of its parent, built in linear time.
    """
    heads = [U32.pack(7 * (levels - 1 - i)) + b"\x01kF" for i in range(levels - 1)]
    return b"".join(heads) + b"\x00\x00\x00\x00"


def nested_arrays(levels: int) -> bytes:
    """
    C{levels} arrays, each the only value of its parent.
    """
    heads = [U32.pack(5 * (levels - 1 - i)) + b"A" for i in range(levels - 1)]
    return b"".join(heads) + b"\x00\x00\x00\x00"


# --------------------------------------------------------------------------
# Strategies

keys = st.text(st.characters(codec="utf-8"), max_size=12)
texts = st.text(st.characters(codec="utf-8"), max_size=30)
table_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=0, fold=0))
table_decimals = st.builds(
    lambda value, scale: Decimal(value).scaleb(-scale),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 255),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    table_decimals,
    texts,
    st.binary(max_size=30),
    table_datetimes,
    st.none(),
)
table_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=12,
)
tables = st.dictionaries(keys, table_values, max_size=6)
arrays = st.lists(table_values, max_size=6)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "octet": st.integers(0, 2**8 - 1),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**64 - 1),
    "timestamp": st.integers(0, 2**64 - 1),
    "bit": st.booleans(),
    "shortstr": st.text(st.characters(codec="utf-8"), max_size=60),
    "longstr": st.binary(max_size=40),
    # shallow tables here: the table tests cover nesting
    "table": st.dictionaries(keys, scalars | st.lists(scalars, max_size=3), max_size=3),
}


@st.composite
def typed_fields(draw: st.DrawFn) -> tuple[tuple[str, ...], list[Any]]:
    """
    A random list of wire types and a value for each.
    """
    types = tuple(draw(st.lists(st.sampled_from(sorted(FIELD_TYPES)), max_size=16)))
    return types, [draw(FIELD_VALUES[t]) for t in types]


def property_values(types: tuple[str, ...]) -> st.SearchStrategy[list[Any]]:
    """
    A value or C{None} for each property of C{types}.
    """
    return st.tuples(*[st.none() | FIELD_VALUES[t] for t in types]).map(list)


# Fragments that look like table syntax, for input that gets past the
# first few checks more often than uniform random bytes do.
fragments = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"\x01k",
                b"\x00",
                b"\x00\x00\x00\x00",
                b"\x00\x00\x00\x05",
                b"\x00\x00\x00\x09",
                b"\xff\xff\xff\xff",
                b"\x7f\xff\xff\xff",
                b"\xff",
                b"\x80",
            ]
            + [bytes((c,)) for c in b"tbBsuUIilLfdDSATFVxZ"]
        ),
        st.binary(max_size=4),
    ),
    max_size=24,
).map(b"".join)


def same(testcase: SynchronousTestCase, actual: Any, expected: Any) -> None:
    """
    Assert equal values of the same types, all the way down.
    """
    testcase.assertEqual(repr(actual), repr(expected))


# --------------------------------------------------------------------------
# Field tables


class TableGoldenTests(SynchronousTestCase):
    """
    Every RabbitMQ field value type against its exact bytes.
    """

    DECODED: ClassVar[list[tuple[bytes, bytes, Any]]] = [
        (b"t", b"\x01", True),
        (b"t", b"\x00", False),
        (b"t", b"\x07", True),
        (b"b", b"\xff", -1),
        (b"B", b"\xff", 255),
        (b"s", b"\xff\xfe", -2),
        (b"u", b"\xff\xfe", 65534),
        (b"U", b"\x80\x00", -32768),
        (b"I", b"\xff\xff\xff\xff", -1),
        (b"i", b"\xff\xff\xff\xff", 2**32 - 1),
        (b"l", b"\xff" * 8, -1),
        (b"L", b"\xff" * 8, 2**64 - 1),
        (b"f", b"\x3f\xc0\x00\x00", 1.5),
        (b"d", b"\x3f\xf8\x00\x00\x00\x00\x00\x00", 1.5),
        (b"D", b"\x02\x00\x00\x30\x39", Decimal("123.45")),
        (b"D", b"\x01\xff\xff\xff\xf1", Decimal("-1.5")),
        (b"S", b"\x00\x00\x00\x03abc", "abc"),
        (b"S", b"\x00\x00\x00\x02\xc3\xa9", "\xe9"),
        (b"S", b"\x00\x00\x00\x02\xff\xfe", b"\xff\xfe"),
        (b"A", b"\x00\x00\x00\x06I\x00\x00\x00\x01V", [1, None]),
        (b"A", b"\x00\x00\x00\x00", []),
        (b"T", b"\x00\x00\x00\x00\x3b\x9a\xca\x00", datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)),
        (b"F", b"\x00\x00\x00\x04\x01at\x01", {"a": True}),
        (b"V", b"", None),
        (b"x", b"\x00\x00\x00\x02\x00\xff", b"\x00\xff"),
        (b"x", b"\x00\x00\x00\x03abc", b"abc"),
    ]

    ENCODED: ClassVar[list[tuple[Any, bytes]]] = [
        (True, b"t\x01"),
        (False, b"t\x00"),
        (1, b"I\x00\x00\x00\x01"),
        (-1, b"I\xff\xff\xff\xff"),
        (2**31 - 1, b"I\x7f\xff\xff\xff"),
        (-(2**31), b"I\x80\x00\x00\x00"),
        (2**31, b"l\x00\x00\x00\x00\x80\x00\x00\x00"),
        (-(2**63), b"l\x80" + b"\x00" * 7),
        (2**63 - 1, b"l\x7f" + b"\xff" * 7),
        (1.5, b"d\x3f\xf8\x00\x00\x00\x00\x00\x00"),
        (Decimal("123.45"), b"D\x02\x00\x00\x30\x39"),
        (Decimal("-1.5"), b"D\x01\xff\xff\xff\xf1"),
        (Decimal("1E+2"), b"D\x00\x00\x00\x00\x64"),
        (Decimal("0E+30"), b"D\x00\x00\x00\x00\x00"),
        ("abc", b"S\x00\x00\x00\x03abc"),
        ("\xe9", b"S\x00\x00\x00\x02\xc3\xa9"),
        (b"\x00\xff", b"x\x00\x00\x00\x02\x00\xff"),
        (bytearray(b"ab"), b"x\x00\x00\x00\x02ab"),
        (memoryview(b"ab"), b"x\x00\x00\x00\x02ab"),
        (datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC), b"T\x00\x00\x00\x00\x3b\x9a\xca\x00"),
        (datetime(2001, 9, 9, 1, 46, 40), b"T\x00\x00\x00\x00\x3b\x9a\xca\x00"),
        (datetime(2001, 9, 9, 1, 46, 40, 999999), b"T\x00\x00\x00\x00\x3b\x9a\xca\x00"),
        (
            datetime(2001, 9, 9, 2, 46, 40, tzinfo=timezone(timedelta(hours=1))),
            b"T\x00\x00\x00\x00\x3b\x9a\xca\x00",
        ),
        (None, b"V"),
        ({}, b"F\x00\x00\x00\x00"),
        ({"a": True}, b"F\x00\x00\x00\x04\x01at\x01"),
        ([], b"A\x00\x00\x00\x00"),
        ((1, None), b"A\x00\x00\x00\x06I\x00\x00\x00\x01V"),
    ]

    def test_decode_each_type(self) -> None:
        """
        Each type octet decodes to the documented Python value and type, and
        the whole table is consumed.
        """
        for kind, payload, expected in self.DECODED:
            data = sized(entry(b"key", kind, payload))
            table, end = decode_table(data, 0)
            same(self, table, {"key": expected})
            self.assertEqual(end, len(data))

    def test_encode_each_type(self) -> None:
        """
        Each Python type encodes to its documented type octet and bytes.
        """
        for value, expected in self.ENCODED:
            self.assertEqual(encode_table({"key": value}), sized(b"\x03key" + expected))

    def test_encode_array_items(self) -> None:
        """
        Array items are typed values with no keys, after a 4-byte byte length.
        """
        self.assertEqual(
            encode_array([1, "a", None]),
            sized(b"I\x00\x00\x00\x01" + b"S\x00\x00\x00\x01a" + b"V"),
        )
        self.assertEqual(encode_array(()), b"\x00\x00\x00\x00")

    def test_empty_table(self) -> None:
        """
        C{None} and an empty mapping both encode as an empty table.
        """
        self.assertEqual(encode_table(None), b"\x00\x00\x00\x00")
        self.assertEqual(encode_table({}), b"\x00\x00\x00\x00")
        self.assertEqual(decode_table(b"\x00\x00\x00\x00", 0), ({}, 4))

    def test_several_entries_keep_order(self) -> None:
        """
        Entries are written and read back in the mapping's order.
        """
        table = {"b": 1, "a": "x", "c": [True]}
        self.assertEqual(list(decode_table(encode_table(table), 0)[0]), ["b", "a", "c"])

    def test_raw_strings(self) -> None:
        """
        With C{raw_strings=True}, long strings stay bytes, nested ones too.
        """
        data = encode_table({"s": "abc", "n": {"t": "d"}, "a": ["e"]})
        table, _ = decode_table(data, 0, raw_strings=True)
        same(self, table, {"s": b"abc", "n": {"t": b"d"}, "a": [b"e"]})
        items, _ = decode_array(encode_array(["f"]), 0, raw_strings=True)
        same(self, items, [b"f"])

    def test_offset_and_trailing_bytes(self) -> None:
        """
        Decoding starts at the offset and stops at the table's end, leaving
        the bytes around it alone.
        """
        data = b"junk" + encode_table({"a": 1}) + b"more"
        self.assertEqual(decode_table(data, 4), ({"a": 1}, len(data) - 4))
        data = b"xy" + encode_array([1]) + b"z"
        self.assertEqual(decode_array(data, 2), ([1], len(data) - 1))

    def test_other_buffers(self) -> None:
        """
        C{bytearray} and C{memoryview} input decode like C{bytes}, offsets
        included; values come back as C{bytes} or C{str}.
        """
        data = b"__" + encode_table({"a": "b", "x": b"y"})
        expected = ({"a": "b", "x": b"y"}, len(data))
        for buf in (bytearray(data), memoryview(data), memoryview(data).cast("b")):
            result = decode_table(buf, 2)
            same(self, result, expected)
        same(self, decode_array(memoryview(b"_" + encode_array([b"z"])), 1), ([b"z"], 11))

    def test_subclasses(self) -> None:
        """
        Subclasses of the supported types encode like their base type.
        """

        class Level(IntEnum):
            HIGH = 7

        table = OrderedDict([("level", Level.HIGH), ("nested", OrderedDict(a=1))])
        decoded, _ = decode_table(encode_table(table), 0)
        same(self, decoded, {"level": 7, "nested": {"a": 1}})

    def test_negative_offset(self) -> None:
        """
        A negative offset is a programming error: C{ValueError}.
        """
        self.assertRaises(ValueError, decode_table, b"\x00\x00\x00\x00", -1)
        self.assertRaises(ValueError, decode_array, b"\x00\x00\x00\x00", -1)


class TableRoundTripTests(SynchronousTestCase):
    """
    Whatever can be encoded decodes back to equal values of the same types.
    """

    @examples
    @given(tables)
    def test_table(self, table: dict[str, Any]) -> None:
        """
        A table of any encodable values, nested tables and arrays included,
        round-trips exactly and is consumed whole.
        """
        data = encode_table(table)
        decoded, end = decode_table(data, 0)
        same(self, decoded, table)
        self.assertEqual(end, len(data))

    @examples
    @given(arrays)
    def test_array(self, items: list[Any]) -> None:
        """
        An array of any encodable values round-trips exactly.
        """
        data = encode_array(items)
        decoded, end = decode_array(data, 0)
        same(self, decoded, items)
        self.assertEqual(end, len(data))


class TableHostileInputTests(SynchronousTestCase):
    """
    Malformed tables from the peer raise L{RemoteProtocolError} (502), and
    nothing else, quickly.
    """

    RICH: ClassVar[dict[str, Any]] = {
        "bool": True,
        "int": -5,
        "long": 2**40,
        "float": 2.5,
        "decimal": Decimal("3.14"),
        "text": "h\xe9llo",
        "bytes": b"\x00\x01",
        "when": datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
        "none": None,
        "nested": {"deeper": {"list": [1, "two", [3.0, None]]}},
        "array": [True, {"k": "v"}],
    }

    def assertSyntaxError(self, f: Any, *args: Any) -> RemoteProtocolError:
        """
        Assert C{f(*args)} raises a 502 L{RemoteProtocolError}.
        """
        exc = self.assertRaises(RemoteProtocolError, f, *args)
        self.assertEqual(exc.reply_code, 502)
        return exc

    def test_truncated_at_every_offset(self) -> None:
        """
        A valid table cut short anywhere is an error.
        """
        data = encode_table(self.RICH)
        for cut in range(len(data)):
            self.assertSyntaxError(decode_table, data[:cut], 0)

    def test_content_cut_at_every_offset(self) -> None:
        """
        A table whose declared length stops anywhere inside its entries
        either ends on an entry boundary (and decodes to the entries before
        it) or is an error: no entry may cross the table's end.
        """
        body = encode_table(self.RICH)[4:]
        boundaries = 0
        for cut in range(len(body)):
            data = sized(body[:cut]) + body[cut:]
            try:
                table, end = decode_table(data, 0)
            except RemoteProtocolError as e:
                self.assertEqual(e.reply_code, 502)
            else:
                boundaries += 1
                self.assertEqual(end, cut + 4)
                self.assertEqual(list(table), list(self.RICH)[: len(table)])
        self.assertEqual(boundaries, len(self.RICH))

    def test_array_truncated_at_every_offset(self) -> None:
        """
        A valid array cut short anywhere is an error.
        """
        data = encode_array(list(self.RICH.values()))
        for cut in range(len(data)):
            self.assertSyntaxError(decode_array, data[:cut], 0)

    def test_huge_declared_lengths(self) -> None:
        """
        Lengths far past the end of the data are errors, not allocations or
        hangs: the table's own, and those of the values inside it.
        """
        for size in (2**31, 2**32 - 1, 2**31 - 1):
            self.assertSyntaxError(decode_table, U32.pack(size) + b"\x01kV", 0)
            self.assertSyntaxError(decode_array, U32.pack(size) + b"V", 0)
            for kind in b"SxAF":
                body = entry(b"k", bytes((kind,)), U32.pack(size))
                self.assertSyntaxError(decode_table, sized(body), 0)
                self.assertSyntaxError(decode_array, sized(bytes((kind,)) + U32.pack(size)), 0)

    def test_value_crossing_table_end(self) -> None:
        """
        A value must fit inside its table even if the bytes after the table
        would complete it.
        """
        data = sized(entry(b"k", b"I", b"\x00\x00")) + b"\x00\x00"
        self.assertSyntaxError(decode_table, data, 0)
        inner = sized(entry(b"k", b"S", U32.pack(3)))
        data = sized(entry(b"n", b"F", inner)) + b"abc"
        self.assertSyntaxError(decode_table, data, 0)

    def test_key_crossing_table_end(self) -> None:
        """
        A key, or an entry with no room for its type octet, is an error.
        """
        self.assertSyntaxError(decode_table, sized(b"\x05ab") + b"cde", 0)
        self.assertSyntaxError(decode_table, sized(b"\x02ab") + b"V", 0)

    def test_unknown_type_octet(self) -> None:
        """
        An unknown type octet is an error naming it.
        """
        exc = self.assertSyntaxError(decode_table, sized(entry(b"k", b"Z", b"")), 0)
        self.assertIn("'Z'", exc.reply_text)
        self.assertSyntaxError(decode_array, sized(b"\x00"), 0)

    def test_key_not_utf8(self) -> None:
        """
        A table key that is not UTF-8 is an error.
        """
        exc = self.assertSyntaxError(decode_table, sized(entry(b"\xff", b"V", b"")), 0)
        self.assertIn("UTF-8", exc.reply_text)

    def test_timestamp_out_of_range(self) -> None:
        """
        A table timestamp past the year 9999 is an error, not an
        C{OverflowError}.
        """
        for seconds in (2**64 - 1, 253402300800):
            data = sized(entry(b"t", b"T", struct.pack(">Q", seconds)))
            self.assertSyntaxError(decode_table, data, 0)
        last = sized(entry(b"t", b"T", struct.pack(">Q", 253402300799)))
        self.assertEqual(decode_table(last, 0)[0]["t"].year, 9999)

    def test_nesting_limit(self) -> None:
        """
        Tables and arrays nest up to L{MAX_DEPTH} levels; one more is an
        error, and so is a very deep structure (without a C{RecursionError}).
        """
        self.assertEqual(MAX_DEPTH, 64)
        decode_table(nested_tables(MAX_DEPTH), 0)
        decode_array(nested_arrays(MAX_DEPTH), 0)
        for levels in (MAX_DEPTH + 1, 100_000):
            exc = self.assertSyntaxError(decode_table, nested_tables(levels), 0)
            self.assertIn("deeper", exc.reply_text)
            self.assertSyntaxError(decode_array, nested_arrays(levels), 0)

    @examples
    @given(st.binary(max_size=64) | fragments, st.booleans())
    def test_random_bytes(self, data: bytes, framed: bool) -> None:
        """
        Random bytes, raw or behind a matching length, decode or raise
        L{RemoteProtocolError}, as tables and as arrays.
        """
        if framed:
            data = sized(data)
        for decode in (decode_table, decode_array):
            try:
                decode(data, 0)
            except RemoteProtocolError as e:
                self.assertEqual(e.reply_code, 502)

    @examples
    @given(tables, st.data())
    def test_corrupted_byte(self, table: dict[str, Any], data: st.DataObject) -> None:
        """
        A valid table with one byte changed decodes or raises
        L{RemoteProtocolError}.
        """
        encoded = bytearray(encode_table(table))
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
        try:
            decode_table(bytes(encoded), 0)
        except RemoteProtocolError as e:
            self.assertEqual(e.reply_code, 502)


class TableEncodeErrorTests(SynchronousTestCase):
    """
    Values the application passes that have no encoding raise
    L{LocalProtocolError} (502).
    """

    def assertLocalError(self, f: Any, *args: Any) -> LocalProtocolError:
        """
        Assert C{f(*args)} raises a 502 L{LocalProtocolError}.
        """
        exc = self.assertRaises(LocalProtocolError, f, *args)
        self.assertEqual(exc.reply_code, 502)
        return exc

    def test_unsupported_type(self) -> None:
        """
        A value of a type with no wire type is an error naming the key and
        the type.
        """
        exc = self.assertLocalError(encode_table, {"colours": {"red"}})
        self.assertIn("'colours'", exc.reply_text)
        self.assertIn("set", exc.reply_text)
        exc = self.assertLocalError(encode_table, {"n": {"deep": object()}})
        self.assertIn("'deep'", exc.reply_text)
        exc = self.assertLocalError(encode_array, [1, 2j])
        self.assertIn("complex", exc.reply_text)

    def test_integers_out_of_range(self) -> None:
        """
        Integers that do not fit a signed 64-bit value are errors.
        """
        for value in (2**63, -(2**63) - 1, 10**30):
            exc = self.assertLocalError(encode_table, {"n": value})
            self.assertIn("'n'", exc.reply_text)

    def test_bad_decimals(self) -> None:
        """
        Decimals that are not finite, need a scale over 255 or an unscaled
        value over 32 bits are errors.
        """
        for value in ("NaN", "sNaN", "Infinity", "-Infinity", "1E-256", "2147483648", "1E+10"):
            self.assertLocalError(encode_table, {"d": Decimal(value)})
        self.assertLocalError(encode_table, {"d": Decimal("1E+999999")})
        self.assertLocalError(encode_table, {"d": Decimal("1" * 1000)})

    def test_bad_keys(self) -> None:
        """
        Keys must be C{str} of at most 255 bytes of UTF-8.
        """
        self.assertLocalError(encode_table, {1: "x"})
        self.assertLocalError(encode_table, {b"k": "x"})
        self.assertLocalError(encode_table, {"\xe9" * 128: "x"})
        self.assertLocalError(encode_table, {"\ud800": "x"})
        self.assertEqual(len(encode_table({"k" * 255: None})), 4 + 1 + 255 + 1)

    def test_unencodable_text(self) -> None:
        """
        A string that is not valid Unicode (a lone surrogate) is an error.
        """
        self.assertLocalError(encode_table, {"s": "\ud800"})

    def test_timestamps_before_epoch(self) -> None:
        """
        A datetime before 1970 has no AMQP timestamp.
        """
        self.assertLocalError(encode_table, {"t": datetime(1969, 12, 31, 23, 59, 59)})

    def test_not_a_mapping(self) -> None:
        """
        A table must be a mapping and an array a list or tuple.
        """
        for not_mapping in ([], [("a", 1)], "abc", 0):
            self.assertLocalError(encode_table, not_mapping)
        not_lists: tuple[Any, ...] = ({}, "abc", {1, 2})
        for not_list in not_lists:
            self.assertLocalError(encode_array, not_list)

    def test_nesting_limit(self) -> None:
        """
        Tables and arrays nest up to L{MAX_DEPTH} levels; deeper ones, and
        cycles, are errors.
        """
        table: dict[str, Any] = {}
        for _ in range(MAX_DEPTH - 1):
            table = {"k": table}
        self.assertEqual(encode_table(table), nested_tables(MAX_DEPTH))
        self.assertLocalError(encode_table, {"k": table})
        items: list[Any] = []
        for _ in range(MAX_DEPTH - 1):
            items = [items]
        self.assertEqual(encode_array(items), nested_arrays(MAX_DEPTH))
        self.assertLocalError(encode_array, [items])
        cycle: dict[str, Any] = {}
        cycle["self"] = cycle
        exc = self.assertLocalError(encode_table, cycle)
        self.assertIn("deeper", exc.reply_text)


# --------------------------------------------------------------------------
# Method fields


class FieldCodecGoldenTests(SynchronousTestCase):
    """
    Method field layouts against their exact bytes.
    """

    def test_nine_bits(self) -> None:
        """
        Consecutive bits pack least significant first, eight to an octet; the
        ninth starts a new octet.  They decode to C{bool}.
        """
        codec = FieldCodec(("bit",) * 9)
        values = [True, False, True, False, False, False, False, True, True]
        self.assertEqual(codec.encode(values), b"\x85\x01")
        decoded, end = codec.decode(b"\x85\x01", 0)
        same(self, decoded, values)
        self.assertEqual(end, 2)

    def test_sixteen_bits(self) -> None:
        """
        Sixteen bits fill exactly two octets.
        """
        codec = FieldCodec(("bit",) * 16)
        values = [i in (0, 7, 8, 15) for i in range(16)]
        self.assertEqual(codec.encode(values), b"\x81\x81")
        self.assertEqual(codec.decode(b"\x81\x81", 0), (values, 2))

    def test_mixed(self) -> None:
        """
        A non-bit field ends a group of bits; every type is written in order.
        """
        codec = FieldCodec(
            (
                "octet",
                "bit",
                "bit",
                "short",
                "bit",
                "shortstr",
                "longstr",
                "bit",
                "table",
                "long",
                "longlong",
                "timestamp",
            )
        )
        values = [1, True, True, 2, True, "hi", b"xyz", True, {"a": None}, 3, 4, 5]
        expected = (
            b"\x01"
            + b"\x03"
            + b"\x00\x02"
            + b"\x01"
            + b"\x02hi"
            + b"\x00\x00\x00\x03xyz"
            + b"\x01"
            + b"\x00\x00\x00\x03\x01aV"
            + b"\x00\x00\x00\x03"
            + b"\x00\x00\x00\x00\x00\x00\x00\x04"
            + b"\x00\x00\x00\x00\x00\x00\x00\x05"
        )
        self.assertEqual(codec.encode(values), expected)
        decoded, end = codec.decode(expected, 0)
        same(self, decoded, values)
        self.assertEqual(end, len(expected))

    def test_basic_deliver(self) -> None:
        """
        basic.deliver: consumer tag, delivery tag, redelivered, exchange,
        routing key.
        """
        codec = field_codec(DELIVER)
        values = ["ctag", 2**40 + 1, True, "amq.direct", "rk"]
        expected = (
            b"\x04ctag"
            + b"\x00\x00\x01\x00\x00\x00\x00\x01"
            + b"\x01"
            + b"\x0aamq.direct"
            + b"\x02rk"
        )
        self.assertEqual(codec.encode(values), expected)
        self.assertEqual(codec.decode(expected, 0), (values, len(expected)))

    def test_basic_ack(self) -> None:
        """
        basic.ack: delivery tag and multiple, packed by a single struct.
        """
        codec = field_codec(ACK)
        self.assertEqual(codec.encode([7, True]), b"\x00\x00\x00\x00\x00\x00\x00\x07\x01")
        self.assertEqual(codec.decode(b"\x00" * 7 + b"\x07\x00", 0), ([7, False], 9))
        self.assertEqual(len(codec._steps), 1)

    def test_no_fields(self) -> None:
        """
        A method without fields encodes to nothing and decodes nothing.
        """
        codec = FieldCodec(())
        self.assertEqual(codec.encode([]), b"")
        self.assertEqual(codec.decode(b"abc", 1), ([], 1))

    def test_shortstr_rules(self) -> None:
        """
        A short string decodes to C{str} when it is UTF-8, else to C{bytes};
        it encodes from C{str} or C{bytes}.
        """
        codec = FieldCodec(("shortstr",))
        self.assertEqual(codec.encode(["\xe9"]), b"\x02\xc3\xa9")
        self.assertEqual(codec.encode([b"\xff"]), b"\x01\xff")
        self.assertEqual(codec.encode([bytearray(b"a")]), b"\x01a")
        same(self, codec.decode(b"\x02\xc3\xa9", 0), (["\xe9"], 3))
        same(self, codec.decode(b"\x01\xff", 0), ([b"\xff"], 2))
        same(self, codec.decode(b"\x00", 0), ([""], 1))
        self.assertEqual(codec.encode(["x" * 255])[:1], b"\xff")

    def test_longstr_rules(self) -> None:
        """
        A long string always decodes to C{bytes}; it encodes from bytes-like
        values or from C{str} as UTF-8.
        """
        codec = FieldCodec(("longstr",))
        for value in (b"ab", bytearray(b"ab"), memoryview(b"ab"), "ab"):
            self.assertEqual(codec.encode([value]), b"\x00\x00\x00\x02ab")
        same(self, codec.decode(b"\x00\x00\x00\x02ab", 0), ([b"ab"], 6))

    def test_timestamps(self) -> None:
        """
        A timestamp field decodes to an C{int} and encodes from an C{int} or a
        C{datetime}, naive meaning UTC.
        """
        codec = FieldCodec(("timestamp", "bit"))
        expected = b"\x00\x00\x00\x00\x3b\x9a\xca\x00\x01"
        for when in (
            1_000_000_000,
            datetime(2001, 9, 9, 1, 46, 40),
            datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC),
        ):
            self.assertEqual(codec.encode([when, True]), expected)
        self.assertEqual(codec.decode(expected, 0), ([1_000_000_000, True], 9))

    def test_bits_take_booleans(self) -> None:
        """
        A bit takes C{True} and C{False}, or 1 and 0; any other value (C{""},
        C{None}, 2, C{"no"}) is a L{LocalProtocolError} naming the field,
        rather than being taken by its truth.
        """
        self.assertEqual(FieldCodec(("bit", "bit", "bit")).encode([1, False, True]), b"\x05")
        self.assertEqual(FieldCodec(("bit", "bit", "bit")).encode([0, True, 0]), b"\x02")
        for value in ("", None, 2, "no", 1.0):
            with self.subTest(value=value):
                error = self.assertRaises(
                    LocalProtocolError, FieldCodec(("bit", "bit")).encode, [True, value]
                )
                self.assertIn("field 1", str(error))

    def test_other_buffers_and_offsets(self) -> None:
        """
        Decoding reads from C{bytearray} and C{memoryview} too; the returned
        offset counts from the start of the buffer.
        """
        codec = field_codec(DELIVER)
        payload = codec.encode(["c", 1, False, "e", "r"])
        data = b"\xaa" * 4 + payload + b"\xbb"
        for buf in (data, bytearray(data), memoryview(data)):
            self.assertEqual(codec.decode(buf, 4), (["c", 1, False, "e", "r"], len(data) - 1))
        self.assertRaises(ValueError, codec.decode, data, -1)

    def test_shared_instances(self) -> None:
        """
        L{field_codec} returns one codec per layout.
        """
        self.assertIs(field_codec(DELIVER), field_codec(tuple(DELIVER)))
        self.assertEqual(field_codec(ACK).types, ACK)

    def test_unknown_wire_type(self) -> None:
        """
        A codec cannot be built for an unknown wire type.
        """
        self.assertRaises(ValueError, FieldCodec, ("octet", "float"))
        self.assertRaises(ValueError, PropertiesCodec, ("uuid",))

    @examples
    @given(typed_fields())
    def test_round_trip(self, fields: tuple[tuple[str, ...], list[Any]]) -> None:
        """
        Any layout of any types round-trips its values exactly.
        """
        types, values = fields
        codec = FieldCodec(types)
        data = codec.encode(values)
        decoded, end = codec.decode(data, 0)
        same(self, decoded, values)
        self.assertEqual(end, len(data))

    @examples
    @given(typed_fields())
    def test_truncated(self, fields: tuple[tuple[str, ...], list[Any]]) -> None:
        """
        Any encoded layout cut short anywhere is a L{RemoteProtocolError}.
        """
        types, values = fields
        codec = FieldCodec(types)
        data = codec.encode(values)
        for cut in range(len(data)):
            exc = self.assertRaises(RemoteProtocolError, codec.decode, data[:cut], 0)
            self.assertEqual(exc.reply_code, 502)

    @examples
    @given(st.lists(st.sampled_from(sorted(FIELD_TYPES)), max_size=10), st.binary(max_size=48))
    def test_random_bytes(self, types: list[str], data: bytes) -> None:
        """
        Random bytes decode or raise L{RemoteProtocolError}, for any layout.
        """
        try:
            field_codec(tuple(types)).decode(data, 0)
        except RemoteProtocolError as e:
            self.assertEqual(e.reply_code, 502)


class FieldCodecEncodeErrorTests(SynchronousTestCase):
    """
    Values that do not fit their field raise L{LocalProtocolError} (502)
    naming the field.
    """

    def assertLocalError(self, types: tuple[str, ...], values: list[Any]) -> LocalProtocolError:
        """
        Assert encoding C{values} as C{types} raises a 502
        L{LocalProtocolError}.
        """
        exc = self.assertRaises(LocalProtocolError, FieldCodec(types).encode, values)
        self.assertEqual(exc.reply_code, 502)
        return exc

    def test_long_shortstr(self) -> None:
        """
        A short string over 255 bytes is an error naming the field.
        """
        exc = self.assertLocalError(("octet", "shortstr"), [1, "x" * 300])
        self.assertIn("field 1", exc.reply_text)
        self.assertIn("255", exc.reply_text)
        self.assertLocalError(("shortstr",), ["\xe9" * 128])

    def test_integers_out_of_range(self) -> None:
        """
        Integers outside their unsigned range, and non-integers, are errors
        naming the field.
        """
        cases = [
            ("octet", 256),
            ("octet", -1),
            ("short", 2**16),
            ("long", 2**32),
            ("longlong", 2**64),
            ("longlong", -1),
            ("timestamp", 2**64),
            ("timestamp", -1),
            ("octet", 1.5),
            ("short", "1"),
            ("long", None),
        ]
        for type_name, value in cases:
            exc = self.assertLocalError(("bit", type_name), [True, value])
            self.assertIn("field 1", exc.reply_text)

    def test_wrong_types(self) -> None:
        """
        Strings, tables and timestamps reject values of the wrong type.
        """
        self.assertLocalError(("shortstr",), [None])
        self.assertLocalError(("shortstr",), [1])
        self.assertLocalError(("shortstr",), ["\ud800"])
        self.assertLocalError(("longstr",), [1])
        self.assertLocalError(("table",), [[("a", 1)]])
        self.assertLocalError(("table",), [{"k": object()}])
        self.assertLocalError(("timestamp",), ["2020-01-01"])
        self.assertLocalError(("timestamp",), [datetime(1960, 1, 1)])

    def test_error_does_not_quote_strings(self) -> None:
        """
        A string that cannot be encoded is not quoted in the error: it may
        be a credential.
        """
        exc = self.assertLocalError(("longstr",), ["\0guest\0s3cret\udc00"])
        self.assertNotIn("s3cret", str(exc))
        exc = self.assertRaises(LocalProtocolError, encode_table, {"password": "s3cret\udc00"})
        self.assertNotIn("s3cret", str(exc))
        self.assertIn("'password'", str(exc))

    def test_wrong_count(self) -> None:
        """
        One value per field, no more, no fewer.
        """
        self.assertLocalError(("octet", "octet"), [1])
        self.assertLocalError(("octet",), [1, 2])


# --------------------------------------------------------------------------
# Content properties


class PropertiesCodecTests(SynchronousTestCase):
    """
    Content header property lists: flags, then the present values.
    """

    def test_basic_golden(self) -> None:
        """
        content-type and delivery-mode set: flag bits 15 and 12, then the
        values in spec order.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        values: list[Any] = [None] * 14
        values[0] = "text/plain"
        values[3] = 2
        expected = b"\x90\x00" + b"\x0atext/plain" + b"\x02"
        self.assertEqual(codec.encode(values), expected)
        self.assertEqual(codec.decode(expected, 0), (values, len(expected)))

    def test_basic_all_present(self) -> None:
        """
        With all fourteen basic properties set, bits 15 to 2 are set.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        values = ["ct", "ce", {"h": 1}, 2, 9, "c", "r", "60", "m", 5, "t", "u", "a", "x"]
        data = codec.encode(values)
        self.assertEqual(data[:2], b"\xff\xfc")
        self.assertEqual(codec.decode(data, 0), (values, len(data)))

    def test_none_present(self) -> None:
        """
        No property set: one zero flag word.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        self.assertEqual(codec.encode([None] * 14), b"\x00\x00")
        self.assertEqual(codec.decode(b"\x00\x00", 0), ([None] * 14, 2))

    def test_continuation_word(self) -> None:
        """
        With more than 15 properties, bit 0 announces a second flag word; it
        is only written when a later property is present.
        """
        codec = PropertiesCodec(SYNTHETIC_PROPERTIES)
        values: list[Any] = [None] * 20
        values[15] = 7
        expected = b"\x00\x01\x80\x00" + b"\x00\x00\x00\x07"
        self.assertEqual(codec.encode(values), expected)
        self.assertEqual(codec.decode(expected, 0), (self.absent(values), len(expected)))
        values[15] = None
        values[0] = "a"
        self.assertEqual(codec.encode(values), b"\x80\x00\x01a")
        self.assertEqual(codec.decode(b"\x80\x00\x01a", 0), (self.absent(values), 4))
        # a zero second word is accepted too
        self.assertEqual(codec.decode(b"\x80\x01\x00\x00\x01a", 0), (self.absent(values), 6))

    def absent(self, values: list[Any]) -> list[Any]:
        """
        The decoded form of C{values} for L{SYNTHETIC_PROPERTIES}: absent bit
        properties read as C{False}.
        """
        return [
            False if t == "bit" and v is None else v
            for t, v in zip(SYNTHETIC_PROPERTIES, values, strict=True)
        ]

    def test_bit_property(self) -> None:
        """
        A bit property is carried in its flag alone: present when true, and
        decoded as C{True} or C{False}.
        """
        codec = PropertiesCodec(("bit", "shortstr", "bit"))
        self.assertEqual(codec.encode([True, "a", False]), b"\xc0\x00\x01a")
        self.assertEqual(codec.encode([None, None, None]), b"\x00\x00")
        self.assertEqual(codec.decode(b"\xc0\x00\x01a", 0), ([True, "a", False], 4))
        self.assertEqual(codec.decode(b"\x20\x00", 0), ([False, None, True], 2))

    def test_other_buffers_and_offsets(self) -> None:
        """
        Decoding reads from C{bytearray} and C{memoryview} and returns offsets
        from the start of the buffer.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        values: list[Any] = [None] * 14
        values[8] = "id"
        data = b"\x00" * 14 + codec.encode(values)
        for buf in (data, bytearray(data), memoryview(data)):
            self.assertEqual(codec.decode(buf, 14), (values, len(data)))
        self.assertRaises(ValueError, codec.decode, data, -2)

    def test_flag_for_missing_property(self) -> None:
        """
        A flag for a property the class does not have is an error.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        exc = self.assertRaises(RemoteProtocolError, codec.decode, b"\x00\x02", 0)
        self.assertEqual(exc.reply_code, 502)
        codec = PropertiesCodec(SYNTHETIC_PROPERTIES)
        exc = self.assertRaises(RemoteProtocolError, codec.decode, b"\x00\x01\x00\x40", 0)
        self.assertEqual(exc.reply_code, 502)

    def test_too_many_flag_words(self) -> None:
        """
        More flag words than the class's properties need is an error, even
        with no property flagged.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        exc = self.assertRaises(RemoteProtocolError, codec.decode, b"\x00\x01\x00\x00", 0)
        self.assertEqual(exc.reply_code, 502)
        codec = PropertiesCodec(SYNTHETIC_PROPERTIES)
        data = b"\x00\x01" * 200
        exc = self.assertRaises(RemoteProtocolError, codec.decode, data, 0)
        self.assertEqual(exc.reply_code, 502)

    def test_truncated_at_every_offset(self) -> None:
        """
        A property list cut short anywhere is a L{RemoteProtocolError}.
        """
        codec = PropertiesCodec(SYNTHETIC_PROPERTIES)
        values = [
            "a",
            1,
            True,
            2,
            3,
            4,
            5,
            b"six",
            {"k": [1, "x"]},
            "n",
            False,
            6,
            "s",
            7,
            "t",
            8,
            True,
            {},
            "u",
            b"v",
        ]
        data = codec.encode(values)
        self.assertEqual(codec.decode(data, 0), (values, len(data)))
        for cut in range(len(data)):
            exc = self.assertRaises(RemoteProtocolError, codec.decode, data[:cut], 0)
            self.assertEqual(exc.reply_code, 502)

    def test_encode_errors(self) -> None:
        """
        A value that does not fit its property is an error naming it; so is
        the wrong number of values.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        values: list[Any] = [None] * 14
        values[5] = "x" * 300
        exc = self.assertRaises(LocalProtocolError, codec.encode, values)
        self.assertEqual(exc.reply_code, 502)
        self.assertIn("property 5", exc.reply_text)
        values[5] = None
        for index, bad in ((3, 256), (4, -1), (9, "now"), (2, ["a"]), (2, {"k": {1}})):
            wrong = list(values)
            wrong[index] = bad
            exc = self.assertRaises(LocalProtocolError, codec.encode, wrong)
            self.assertIn(f"property {index}", exc.reply_text)
        self.assertRaises(LocalProtocolError, codec.encode, [None] * 13)

    def test_timestamp_property(self) -> None:
        """
        The timestamp property encodes from a C{datetime} and decodes to an
        C{int}.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        values: list[Any] = [None] * 14
        values[9] = datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)
        data = codec.encode(values)
        self.assertEqual(data, b"\x00\x40" + b"\x00\x00\x00\x00\x3b\x9a\xca\x00")
        self.assertEqual(codec.decode(data, 0)[0][9], 1_000_000_000)

    @examples
    @given(property_values(BASIC_PROPERTIES))
    def test_basic_round_trip(self, values: list[Any]) -> None:
        """
        Any subset of the basic properties round-trips exactly.
        """
        codec = PropertiesCodec(BASIC_PROPERTIES)
        data = codec.encode(values)
        decoded, end = codec.decode(data, 0)
        same(self, decoded, values)
        self.assertEqual(end, len(data))

    @examples
    @given(property_values(SYNTHETIC_PROPERTIES))
    def test_continuation_round_trip(self, values: list[Any]) -> None:
        """
        Any subset of 20 properties (two flag words) round-trips, absent bit
        properties reading as C{False}.
        """
        codec = PropertiesCodec(SYNTHETIC_PROPERTIES)
        data = codec.encode(values)
        decoded, end = codec.decode(data, 0)
        same(self, decoded, self.absent(values))
        self.assertEqual(end, len(data))

    @examples
    @given(st.binary(max_size=64) | fragments, st.booleans())
    def test_random_bytes(self, data: bytes, synthetic: bool) -> None:
        """
        Random bytes decode or raise L{RemoteProtocolError}.
        """
        codec = PropertiesCodec(SYNTHETIC_PROPERTIES if synthetic else BASIC_PROPERTIES)
        try:
            codec.decode(data, 0)
        except RemoteProtocolError as e:
            self.assertEqual(e.reply_code, 502)
