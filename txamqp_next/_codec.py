# -*- test-case-name: tests.test_codec -*-
"""
Pure encoders and decoders for the AMQP 0-9-1 wire types.

Nothing here does I/O.  Decoders take a buffer and an offset and return the
value with the offset just past it; encoders return C{bytes}.  Decoding works
on C{bytes}; a C{bytearray} or C{memoryview} is accepted and copied once,
from the offset on.

Three codecs:

  - L{FieldCodec} (built through the cached L{field_codec}) encodes and
    decodes the arguments of a method, given their wire types.
  - L{PropertiesCodec} encodes and decodes the property list of a content
    header: the property flag words, then the values that are present.
  - L{encode_table}, L{decode_table}, L{encode_array} and L{decode_array}
    handle field tables with every value type RabbitMQ uses.

The wire types of method fields and properties are C{"octet"}, C{"short"},
C{"long"}, C{"longlong"} and C{"timestamp"} (unsigned big-endian integers of
1, 2, 4, 8 and 8 bytes), C{"bit"} (consecutive bits share octets, least
significant bit first, eight to an octet), C{"shortstr"}, C{"longstr"} and
C{"table"}.

Bytes and text
==============

  - Message bodies are always C{bytes} (this module does not see them).
  - A C{shortstr} decodes to C{str} when it is valid UTF-8 and to C{bytes}
    otherwise; it encodes from C{str} (as UTF-8) or from C{bytes}.
  - A C{longstr} method field always decodes to C{bytes}; it encodes from
    C{bytes}, C{bytearray}, C{memoryview} or C{str} (as UTF-8).
  - In a field table, a long string (C{'S'}) decodes to C{str} when it is
    valid UTF-8 and to C{bytes} otherwise; with C{raw_strings=True} it is
    always C{bytes}.  A byte array (C{'x'}) always decodes to C{bytes}.
    Encoding a table writes C{str} as C{'S'} and C{bytes}, C{bytearray} and
    C{memoryview} as C{'x'}.
  - Table keys are C{str}.

Time
====

A C{timestamp} method field or property decodes to an C{int} (seconds since
the epoch) and encodes from an C{int} or a C{datetime}.  A table timestamp
(C{'T'}) decodes to a timezone-aware UTC C{datetime} (one past the year 9999
is a L{RemoteProtocolError}).  A naive C{datetime} is taken to be UTC;
fractions of a second are dropped.

Errors
======

Bytes from the peer that cannot be decoded (truncated, a length past the end
of its container, an unknown type octet, a table key that is not UTF-8,
nesting deeper than L{MAX_DEPTH}) raise L{RemoteProtocolError} with reply
code 502 (syntax error), and nothing else.  A value from the application that
cannot be encoded raises L{LocalProtocolError}, also with reply code 502;
its message names the field, property or table key, never a string's value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any, TypeAlias

from txamqp_next.errors import SYNTAX_ERROR, LocalProtocolError, RemoteProtocolError

__all__ = [
    "FIELD_TYPES",
    "MAX_DEPTH",
    "Buffer",
    "FieldCodec",
    "PropertiesCodec",
    "decode_array",
    "decode_table",
    "encode_array",
    "encode_table",
    "field_codec",
]

#: What the decoders read from.
Buffer: TypeAlias = bytes | bytearray | memoryview

#: The wire types of method fields and content properties.
FIELD_TYPES = frozenset(
    {"octet", "short", "long", "longlong", "bit", "shortstr", "longstr", "timestamp", "table"}
)

#: How deeply tables and arrays may nest, the outermost one counting as 1.
MAX_DEPTH = 64

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_TAGGED_SIZE = struct.Struct(">cI")
_TAGGED_INT32 = struct.Struct(">ci")
_TAGGED_INT64 = struct.Struct(">cq")
_TAGGED_DOUBLE = struct.Struct(">cd")
_TAGGED_UINT64 = struct.Struct(">cQ")
_TAGGED_DECIMAL = struct.Struct(">cBi")

_EMPTY_TABLE = b"\x00\x00\x00\x00"
# Exact for every decimal a table can carry, whatever the thread's context.
_DECIMAL_CONTEXT = Context(prec=20, Emin=-300, Emax=300)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_SECOND = timedelta(seconds=1)
_MAX_U32 = 0xFFFFFFFF
_MAX_U64 = 0xFFFFFFFFFFFFFFFF

# The unsigned fixed-size wire types: struct format code and largest value.
_FIXED_FORMATS = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}
_FIXED_MAXIMUMS = {
    "octet": 0xFF,
    "short": 0xFFFF,
    "long": _MAX_U32,
    "longlong": _MAX_U64,
    "timestamp": _MAX_U64,
}

# How many property decoding plans (one per flag pattern seen) a
# PropertiesCodec keeps; a peer sending ever new patterns cannot grow it.
_PLAN_CACHE_SIZE = 512


# ---------------------------------------------------------------------------
# Errors and buffers


def _syntax(text: str) -> RemoteProtocolError:
    return RemoteProtocolError(SYNTAX_ERROR, text)


def _local(text: str) -> LocalProtocolError:
    return LocalProtocolError(SYNTAX_ERROR, text)


def _truncated(what: str) -> RemoteProtocolError:
    return _syntax(f"{what} is truncated")


def _tail(buf: Buffer, offset: int) -> bytes:
    """
    The bytes of C{buf} from C{offset} on.

    The decoders work on C{bytes}; other buffers are copied once, from the
    offset on, by this.

    @raise ValueError: C{offset} is negative.
    """
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = memoryview(view.tobytes())
    return bytes(view[offset:])


# ---------------------------------------------------------------------------
# Strings, integers and timestamps

# One single-byte bytes object per value: a short string's length prefix.
_OCTETS = tuple(bytes((n,)) for n in range(256))


def _decode_shortstr(buf: bytes, pos: int) -> tuple[str | bytes, int]:
    start = pos + 1
    end = start + buf[pos]
    if end > len(buf):
        raise _truncated("short string")
    raw = buf[start:end]
    try:
        return raw.decode(), end
    except UnicodeDecodeError:
        return raw, end


def _decode_longstr(buf: bytes, pos: int) -> tuple[bytes, int]:
    start = pos + 4
    end = start + _U32.unpack_from(buf, pos)[0]
    if end > len(buf):
        raise _truncated("long string")
    return buf[start:end], end


def _encode_shortstr(value: Any) -> bytes:
    if type(value) is str:
        try:
            data = value.encode()
        except UnicodeEncodeError:
            data = _utf8(value, "short string")
    elif isinstance(value, str):
        data = _utf8(value, "short string")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        raise _local(f"a short string must be str or bytes, not {type(value).__name__}")
    if len(data) > 255:
        raise _local(f"a short string holds at most 255 bytes, got {len(data)}")
    return _OCTETS[len(data)] + data


def _encode_longstr(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        data = _utf8(value, "long string")
    else:
        raise _local(f"a long string must be bytes or str, not {type(value).__name__}")
    if len(data) > _MAX_U32:
        raise _local(f"a long string holds at most {_MAX_U32} bytes, got {len(data)}")
    return _U32.pack(len(data)) + data


def _utf8(value: str, what: str) -> bytes:
    """
    C{value} as UTF-8.  The error does not quote it: it may be a secret.
    """
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _local(
            f"{what} cannot be encoded as UTF-8 ({e.reason} at position {e.start})"
        ) from None


def _timestamp_seconds(value: Any) -> int:
    """
    Seconds since the epoch for an C{int} or a C{datetime} (naive is UTC).
    """
    seconds: int
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=timezone.utc)
        seconds = (value - _EPOCH) // _ONE_SECOND
    elif isinstance(value, int):
        seconds = value
    else:
        raise _local(f"a timestamp must be an int or a datetime, not {type(value).__name__}")
    if not 0 <= seconds <= _MAX_U64:
        raise _local(f"timestamp {value!r} is outside 1970 to 2**64 seconds later")
    return seconds


def _encode_timestamp(value: Any) -> bytes:
    return _U64.pack(_timestamp_seconds(value))


def _int_problem(type_name: str, value: Any) -> str | None:
    """
    Why C{value} cannot be a C{type_name} field, or C{None} if it can.
    """
    try:
        number = value.__index__()
    except (AttributeError, TypeError):
        return f"{type_name} fields take an int, not {type(value).__name__}"
    maximum = _FIXED_MAXIMUMS[type_name]
    if not 0 <= number <= maximum:
        return f"{number} does not fit an unsigned {type_name} (0 to {maximum})"
    return None


def _fixed_encoder(type_name: str) -> Callable[[Any], bytes]:
    if type_name == "timestamp":
        return _encode_timestamp
    pack = struct.Struct(">" + _FIXED_FORMATS[type_name]).pack

    def encode(value: Any) -> bytes:
        try:
            return pack(value)
        except struct.error:
            raise _local(_int_problem(type_name, value) or f"bad {type_name}") from None

    return encode


def _fixed_decoder(type_name: str) -> Callable[[bytes, int], tuple[Any, int]]:
    codec = struct.Struct(">" + _FIXED_FORMATS[type_name])
    unpack_from = codec.unpack_from
    size = codec.size

    def decode(buf: bytes, pos: int) -> tuple[Any, int]:
        return unpack_from(buf, pos)[0], pos + size

    return decode


# ---------------------------------------------------------------------------
# Field tables: decoding
#
# The decoders take (buf, pos, end, raw_strings, depth): end is the end of
# the enclosing table or array, which no value may cross, and depth is the
# nesting level of the table or array being read (the outermost is 1).


def _to_bool(values: tuple[Any, ...]) -> bool:
    return bool(values[0])


def _to_decimal(values: tuple[Any, ...]) -> Decimal:
    scale, value = values
    return Decimal(value).scaleb(-scale, _DECIMAL_CONTEXT)


def _to_datetime(values: tuple[Any, ...]) -> datetime:
    try:
        return _EPOCH + timedelta(seconds=values[0])
    except OverflowError:
        raise _syntax(f"timestamp {values[0]} is past the year 9999") from None


def _fixed_value(
    fmt: str, convert: Callable[[tuple[Any, ...]], Any] | None = None
) -> tuple[Callable[[bytes, int], tuple[Any, ...]], int, Callable[[tuple[Any, ...]], Any] | None]:
    codec = struct.Struct(">" + fmt)
    return codec.unpack_from, codec.size, convert


# type octet: (unpack_from, size, conversion of the unpacked tuple or None)
_FIXED_VALUES = {
    ord("t"): _fixed_value("B", _to_bool),
    ord("b"): _fixed_value("b"),
    ord("B"): _fixed_value("B"),
    ord("s"): _fixed_value("h"),
    ord("u"): _fixed_value("H"),
    ord("U"): _fixed_value("h"),
    ord("I"): _fixed_value("i"),
    ord("i"): _fixed_value("I"),
    ord("l"): _fixed_value("q"),
    ord("L"): _fixed_value("Q"),
    ord("f"): _fixed_value("f"),
    ord("d"): _fixed_value("d"),
    ord("D"): _fixed_value("Bi", _to_decimal),
    ord("T"): _fixed_value("Q", _to_datetime),
}
_LONG_STRING = ord("S")
_SIGNED_32 = ord("I")
_I32_UNPACK = struct.Struct(">i").unpack_from
_BYTE_ARRAY = ord("x")
_ARRAY = ord("A")
_TABLE = ord("F")
_VOID = ord("V")


def _sized(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """
    Read a 4-byte length at C{pos}; return where the content starts and ends.
    """
    start = pos + 4
    if start > end:
        raise _truncated(what)
    stop = start + _U32.unpack_from(buf, pos)[0]
    if stop > end:
        raise _syntax(f"{what} of {stop - start} bytes runs past the end of its container")
    return start, stop


def _decode_value(
    kind: int, buf: bytes, pos: int, end: int, raw: bool, depth: int
) -> tuple[Any, int]:
    """
    Decode the value of type octet C{kind} at C{pos}; C{depth} is the level
    of the table or array holding it.
    """
    fixed = _FIXED_VALUES.get(kind)
    if fixed is not None:
        unpack_from, size, convert = fixed
        stop = pos + size
        if stop > end:
            raise _truncated("field value")
        if convert is None:
            return unpack_from(buf, pos)[0], stop
        return convert(unpack_from(buf, pos)), stop
    if kind == _LONG_STRING:
        start, stop = _sized(buf, pos, end, "long string")
        data = buf[start:stop]
        if raw:
            return data, stop
        try:
            return data.decode(), stop
        except UnicodeDecodeError:
            return data, stop
    if kind == _TABLE:
        return _table_at(buf, pos, end, raw, depth + 1)
    if kind == _ARRAY:
        return _array_at(buf, pos, end, raw, depth + 1)
    if kind == _BYTE_ARRAY:
        start, stop = _sized(buf, pos, end, "byte array")
        return buf[start:stop], stop
    if kind == _VOID:
        return None, pos
    raise _syntax(f"unknown field value type {_OCTETS[kind]!r}")


def _too_deep() -> str:
    return f"field tables and arrays nest deeper than {MAX_DEPTH} levels"


def _table_at(buf: bytes, pos: int, end: int, raw: bool, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise _syntax(_too_deep())
    # _sized, inlined: tables are on hot paths (message headers)
    start = pos + 4
    if start > end:
        raise _truncated("field table")
    stop = start + _U32.unpack_from(buf, pos)[0]
    if stop > end:
        raise _syntax(f"field table of {stop - start} bytes runs past the end of its container")
    pos = start
    table: dict[str, Any] = {}
    fixed_values = _FIXED_VALUES
    unpack_size = _U32.unpack_from
    unpack_int32 = _I32_UNPACK
    while pos < stop:
        key_start = pos + 1
        key_end = key_start + buf[pos]
        if key_end >= stop:
            raise _truncated("field table entry")
        try:
            key = buf[key_start:key_end].decode()
        except UnicodeDecodeError:
            raise _syntax("field table key is not valid UTF-8") from None
        kind = buf[key_end]
        pos = key_end + 1
        if kind == 83:  # _LONG_STRING, "S"
            # _decode_value's long string case, inlined
            start = pos + 4
            if start > stop:
                raise _truncated("long string")
            pos = start + unpack_size(buf, pos)[0]
            if pos > stop:
                raise _syntax(
                    f"long string of {pos - start} bytes runs past the end of its container"
                )
            data = buf[start:pos]
            if raw:
                table[key] = data
                continue
            try:
                table[key] = data.decode()
            except UnicodeDecodeError:
                table[key] = data
            continue
        if kind == 73:  # _SIGNED_32, "I"
            # the commonest integer, inlined too
            if pos + 4 > stop:
                raise _truncated("field value")
            table[key] = unpack_int32(buf, pos)[0]
            pos += 4
            continue
        # _decode_value's fixed-size case, inlined
        fixed = fixed_values.get(kind)
        if fixed is None:
            table[key], pos = _decode_value(kind, buf, pos, stop, raw, depth)
            continue
        unpack_from, size, convert = fixed
        if pos + size > stop:
            raise _truncated("field value")
        if convert is None:
            table[key] = unpack_from(buf, pos)[0]
        else:
            table[key] = convert(unpack_from(buf, pos))
        pos += size
    return table, stop


def _array_at(buf: bytes, pos: int, end: int, raw: bool, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise _syntax(_too_deep())
    pos, stop = _sized(buf, pos, end, "field array")
    items: list[Any] = []
    append = items.append
    while pos < stop:
        value, pos = _decode_value(buf[pos], buf, pos + 1, stop, raw, depth)
        append(value)
    return items, stop


def decode_table(
    buf: Buffer, offset: int, *, raw_strings: bool = False
) -> tuple[dict[str, Any], int]:
    """
    Decode a field table (its 4-byte length, then its entries).

    @param buf: the bytes to read; a C{bytearray} or C{memoryview} is copied
        from C{offset} on.
    @param offset: where the table's length starts.
    @param raw_strings: decode long strings (C{'S'}) to C{bytes} even when
        they are valid UTF-8.
    @return: the table and the offset just past it.
    @raise RemoteProtocolError: (502) the table is truncated, an entry runs
        past its end, a type octet is unknown, a key is not UTF-8, or it
        nests deeper than L{MAX_DEPTH}.
    @raise ValueError: C{offset} is negative.
    """
    if type(buf) is not bytes or offset < 0:
        table, end = decode_table(_tail(buf, offset), 0, raw_strings=raw_strings)
        return table, end + offset
    try:
        result: tuple[dict[str, Any], int] = _table_at(buf, offset, len(buf), raw_strings, 1)
    except (struct.error, IndexError):
        raise _truncated("field table") from None
    return result


def decode_array(buf: Buffer, offset: int, *, raw_strings: bool = False) -> tuple[list[Any], int]:
    """
    Decode a field array (its 4-byte length in bytes, then its values).

    @param buf: the bytes to read, as for L{decode_table}.
    @param offset: where the array's length starts.
    @param raw_strings: as for L{decode_table}.
    @return: the values and the offset just past the array.
    @raise RemoteProtocolError: (502) as for L{decode_table}.
    @raise ValueError: C{offset} is negative.
    """
    if type(buf) is not bytes or offset < 0:
        items, end = decode_array(_tail(buf, offset), 0, raw_strings=raw_strings)
        return items, end + offset
    try:
        result: tuple[list[Any], int] = _array_at(buf, offset, len(buf), raw_strings, 1)
    except (struct.error, IndexError):
        raise _truncated("field array") from None
    return result


# ---------------------------------------------------------------------------
# Field tables: encoding
#
# The value encoders take (value, key, depth) and return the type octet and
# the value's bytes; key names the table entry in error messages (None in a
# top-level array) and depth is the level of the table or array holding it.

_ValueEncoder: TypeAlias = Callable[[Any, "str | None", int], bytes]


def _where(key: str | None) -> str:
    return "an array item" if key is None else f"table key {key!r}"


def _encode_bool(value: Any, key: str | None, depth: int) -> bytes:
    return b"t\x01" if value else b"t\x00"


def _encode_int(value: Any, key: str | None, depth: int) -> bytes:
    if -0x80000000 <= value <= 0x7FFFFFFF:
        return _TAGGED_INT32.pack(b"I", value)
    if -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
        return _TAGGED_INT64.pack(b"l", value)
    raise _local(f"integer {value} for {_where(key)} does not fit a signed 64-bit field")


def _encode_float(value: Any, key: str | None, depth: int) -> bytes:
    return _TAGGED_DOUBLE.pack(b"d", value)


def _encode_decimal(value: Any, key: str | None, depth: int) -> bytes:
    if not value.is_finite():
        raise _local(f"decimal {value} for {_where(key)} is not finite")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    # digits has no leading zeros: more than 10 cannot fit 32 bits
    unscaled = int(Decimal((sign, digits, 0))) if len(digits) <= 10 else 0x80000000
    if exponent > 0:
        unscaled = unscaled * 10 ** min(exponent, 10)
        exponent = 0
    if -exponent > 255 or not -0x80000000 <= unscaled <= 0x7FFFFFFF:
        raise _local(
            f"decimal {value} for {_where(key)} needs a scale of at most 255 "
            "and a signed 32-bit value"
        )
    return _TAGGED_DECIMAL.pack(b"D", -exponent, unscaled)


def _encode_str(value: Any, key: str | None, depth: int) -> bytes:
    data: bytes
    try:
        data = value.encode()
    except UnicodeEncodeError:
        data = _utf8(value, f"string for {_where(key)}")
    if len(data) > _MAX_U32:
        raise _local(f"string for {_where(key)} is longer than {_MAX_U32} bytes")
    return _TAGGED_SIZE.pack(b"S", len(data)) + data


def _encode_bytes(value: Any, key: str | None, depth: int) -> bytes:
    data = bytes(value)
    if len(data) > _MAX_U32:
        raise _local(f"bytes for {_where(key)} are longer than {_MAX_U32} bytes")
    return _TAGGED_SIZE.pack(b"x", len(data)) + data


def _encode_datetime(value: Any, key: str | None, depth: int) -> bytes:
    return _TAGGED_UINT64.pack(b"T", _timestamp_seconds(value))


def _encode_none(value: Any, key: str | None, depth: int) -> bytes:
    return b"V"


def _encode_nested_table(value: Any, key: str | None, depth: int) -> bytes:
    return b"F" + _table(value, depth + 1)


def _encode_nested_array(value: Any, key: str | None, depth: int) -> bytes:
    return b"A" + _array(value, key, depth + 1)


_VALUE_ENCODERS: dict[type, _ValueEncoder] = {
    bool: _encode_bool,
    int: _encode_int,
    float: _encode_float,
    Decimal: _encode_decimal,
    str: _encode_str,
    bytes: _encode_bytes,
    bytearray: _encode_bytes,
    memoryview: _encode_bytes,
    datetime: _encode_datetime,
    type(None): _encode_none,
    dict: _encode_nested_table,
    list: _encode_nested_array,
    tuple: _encode_nested_array,
}

# For subclasses (IntEnum, OrderedDict, ...): checked in order, bool first.
_SUBCLASS_ENCODERS: tuple[tuple[type | tuple[type, ...], _ValueEncoder], ...] = (
    (bool, _encode_bool),
    (int, _encode_int),
    (float, _encode_float),
    (Decimal, _encode_decimal),
    (str, _encode_str),
    ((bytes, bytearray, memoryview), _encode_bytes),
    (datetime, _encode_datetime),
    (Mapping, _encode_nested_table),
    ((list, tuple), _encode_nested_array),
)


def _encoder_for(value: Any, key: str | None) -> _ValueEncoder:
    """
    The encoder for a value whose type is not a key of L{_VALUE_ENCODERS}.
    """
    for cls, candidate in _SUBCLASS_ENCODERS:
        if isinstance(value, cls):
            return candidate
    raise _local(f"cannot encode a value of type {type(value).__name__} for {_where(key)}")


def _with_size(body: bytes, what: str) -> bytes:
    if len(body) > _MAX_U32:
        raise _local(f"{what} of {len(body)} bytes is longer than {_MAX_U32} bytes")
    return _U32.pack(len(body)) + body


def _table(table: Mapping[str, Any], depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise _local(_too_deep())
    parts: list[bytes] = []
    append = parts.append
    encoders = _VALUE_ENCODERS
    for key, value in table.items():
        if type(key) is not str and not isinstance(key, str):
            raise _local(f"field table keys must be str, not {type(key).__name__}: {key!r}")
        try:
            name = key.encode()
        except UnicodeEncodeError:
            name = _utf8(key, f"field table key {key!r}")
        if len(name) > 255:
            raise _local(f"field table key {key!r} is longer than 255 bytes")
        kind = type(value)
        # the commonest header values, inlined
        if kind is str:
            try:
                data = value.encode()
            except UnicodeEncodeError:
                data = _utf8(value, f"string for {_where(key)}")
            if len(data) > _MAX_U32:
                raise _local(f"string for {_where(key)} is longer than {_MAX_U32} bytes")
            append(_OCTETS[len(name)] + name + _TAGGED_SIZE.pack(b"S", len(data)) + data)
        elif kind is int and -0x80000000 <= value <= 0x7FFFFFFF:
            append(_OCTETS[len(name)] + name + _TAGGED_INT32.pack(b"I", value))
        else:
            encoder = encoders.get(kind) or _encoder_for(value, key)
            append(_OCTETS[len(name)] + name + encoder(value, key, depth))
    body = b"".join(parts)
    if len(body) > _MAX_U32:
        raise _local(f"field table of {len(body)} bytes is longer than {_MAX_U32} bytes")
    return _U32.pack(len(body)) + body


def _array(items: Sequence[Any], key: str | None, depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise _local(_too_deep())
    encoders = _VALUE_ENCODERS
    body = b"".join(
        [(encoders.get(type(item)) or _encoder_for(item, key))(item, key, depth) for item in items]
    )
    return _with_size(body, "field array")


def encode_table(table: Mapping[str, Any] | None) -> bytes:
    """
    Encode a field table, with its 4-byte length.

    Each value's wire type follows from its Python type: C{bool} C{'t'};
    C{int} C{'I'} (signed 32-bit) when it fits, else C{'l'} (signed 64-bit);
    C{float} C{'d'}; C{Decimal} C{'D'}; C{str} C{'S'}; C{bytes},
    C{bytearray} and C{memoryview} C{'x'}; C{datetime} C{'T'}; C{None}
    C{'V'}; a mapping C{'F'}; a C{list} or C{tuple} C{'A'}.

    @param table: the entries, or C{None} for an empty table.
    @raise LocalProtocolError: a key is not C{str} or longer than 255 bytes
        of UTF-8, a value has a type with no wire type or does not fit it,
        or the tables and arrays nest deeper than L{MAX_DEPTH}.
    """
    if type(table) is dict:
        if not table:
            return _EMPTY_TABLE
        try:
            return _common_table(table)
        except Exception:
            pass  # _table gives the bytes or the error
    elif table is None:
        return _EMPTY_TABLE
    elif not isinstance(table, Mapping):
        raise _local(f"a field table must be a mapping, not {type(table).__name__}")
    elif not table:
        return _EMPTY_TABLE
    return _table(table, 1)


_str_encode = str.encode
_U32_PACK = _U32.pack
_TAGGED_SIZE_PACK = _TAGGED_SIZE.pack
_TAGGED_INT32_PACK = _TAGGED_INT32.pack
_TRUE = b"t\x01"
_FALSE = b"t\x00"


class _Uncommon(Exception):
    """
    A table value L{_common_table} leaves to L{_table}.
    """


def _common_table(table: dict[str, Any]) -> bytes:
    """
    L{_table} for a top-level C{dict} of C{str} keys, fast for the values
    message headers usually hold (C{str}, C{int}, C{bool}).

    It raises on anything else (a key that is not C{str} or is too long, a
    big integer, ...) and on every error; L{encode_table} then uses
    L{_table}, which produces the bytes or the right error.
    """
    parts: list[bytes] = []
    append = parts.append
    size = 0
    octets = _OCTETS
    for key, value in table.items():
        name = _str_encode(key)
        kind = type(value)
        if kind is str:
            data = _str_encode(value)
            entry = octets[len(name)] + name + _TAGGED_SIZE_PACK(b"S", len(data)) + data
        elif kind is int:
            if not -0x80000000 <= value <= 0x7FFFFFFF:
                raise _Uncommon
            entry = octets[len(name)] + name + _TAGGED_INT32_PACK(b"I", value)
        elif kind is bool:
            entry = octets[len(name)] + name + (_TRUE if value else _FALSE)
        else:
            encoder = _VALUE_ENCODERS.get(kind)
            if encoder is None:
                raise _Uncommon
            entry = octets[len(name)] + name + encoder(value, key, 1)
        append(entry)
        size += len(entry)
    return _U32_PACK(size) + b"".join(parts)


def encode_array(items: Sequence[Any]) -> bytes:
    """
    Encode a field array, with its 4-byte length in bytes.

    @param items: the values, each typed as for L{encode_table}.
    @raise LocalProtocolError: C{items} is not a C{list} or C{tuple}, or as
        for L{encode_table}.
    """
    if not isinstance(items, (list, tuple)):
        raise _local(f"a field array must be a list or tuple, not {type(items).__name__}")
    return _array(items, None, 1)


def _decode_table_field(buf: bytes, pos: int) -> tuple[Any, int]:
    return _table_at(buf, pos, len(buf), False, 1)


# ---------------------------------------------------------------------------
# Method fields

# What a step of a FieldCodec handles.
_SHORTSTR_STEP = 0
_FIXED_STEP = 1
_LONGSTR_STEP = 2
_TABLE_STEP = 3


class _FixedRun:
    """
    Consecutive fixed-size fields (integers, timestamps and the octets that
    carry bits), read and written with one C{struct} call.

    @ivar unpack_from: the run's C{struct} C{unpack_from}.
    @ivar size: the run's size in bytes.
    @ivar bit_layout: C{None} when the run has no bits; else, per field, the
        index of its value in the unpacked tuple and its bit mask (C{0} for
        a field that is not a bit).
    """

    __slots__ = (
        "_pack",
        "_slots",
        "_start",
        "_stop",
        "_types",
        "bit_layout",
        "size",
        "unpack_from",
    )

    def __init__(self, start: int, types: Sequence[str]) -> None:
        self._start = start
        self._stop = start + len(types)
        self._types = tuple(types)
        fmt = ">"
        # per struct value: a field index, or a tuple of (field index, mask)
        # for a bit octet; and whether it is a timestamp
        slots: list[tuple[int | tuple[tuple[int, int], ...], bool]] = []
        layout: list[tuple[int, int]] = []
        bits: list[tuple[int, int]] = []
        for index, type_name in enumerate(types, start):
            if type_name == "bit":
                if not bits or len(bits) == 8:
                    bits = []
                    fmt += "B"
                    slots.append(((), False))
                bits.append((index, 1 << len(bits)))
                slots[-1] = (tuple(bits), False)
                layout.append((len(slots) - 1, bits[-1][1]))
            else:
                bits = []
                fmt += _FIXED_FORMATS[type_name]
                slots.append((index, type_name == "timestamp"))
                layout.append((len(slots) - 1, 0))
        codec = struct.Struct(fmt)
        self._pack = codec.pack
        self.unpack_from = codec.unpack_from
        self.size = codec.size
        self.bit_layout = tuple(layout) if "bit" in types else None
        simple = "bit" not in types and "timestamp" not in types
        self._slots = None if simple else tuple(slots)

    def encode(self, values: Sequence[Any]) -> bytes:
        """
        Encode the run's fields, taken from all of C{values}.

        @raise LocalProtocolError: a value does not fit its field.
        """
        try:
            if self._slots is None:
                return self._pack(*values[self._start : self._stop])
            return self._pack(*self._packable(values))
        except struct.error:
            raise self._explain(values) from None

    def _packable(self, values: Sequence[Any]) -> list[Any]:
        packed: list[Any] = []
        for field, timestamp in self._slots or ():
            if not isinstance(field, int):
                octet = 0
                for index, mask in field:
                    if bit_value(values[index], index):
                        octet |= mask
                packed.append(octet)
            elif timestamp:
                try:
                    packed.append(_timestamp_seconds(values[field]))
                except LocalProtocolError as e:
                    raise _local(f"field {field}: {e.reply_text}") from None
            else:
                packed.append(values[field])
        return packed

    def _explain(self, values: Sequence[Any]) -> LocalProtocolError:
        for index, type_name in enumerate(self._types, self._start):
            if type_name not in ("bit", "timestamp"):
                problem = _int_problem(type_name, values[index])
                if problem:
                    return _local(f"field {index}: {problem}")
        return _local(f"fields {self._start} to {self._stop - 1} cannot be encoded")


def bit_value(value: object, index: int | None = None) -> int:
    """
    A bit field's value: C{True}, C{False}, or the integers 1 and 0.

    @param index: the field's index, for the error message.
    @raise LocalProtocolError: any other value (C{"no"} is not false).
    """
    if value is True or value is False:
        return int(value)
    if type(value) is int and value in (0, 1):
        return value
    problem = f"a bit takes True or False (or 1 or 0), not {type(value).__name__}"
    raise _local(problem if index is None else f"field {index}: {problem}")


def _check_types(types: Sequence[str]) -> None:
    for type_name in types:
        if type_name not in FIELD_TYPES:
            raise ValueError(f"unknown wire type {type_name!r}")


_STEP_KINDS = {"shortstr": _SHORTSTR_STEP, "longstr": _LONGSTR_STEP, "table": _TABLE_STEP}


class FieldCodec:
    """
    Encodes and decodes the fields of a method, given their wire types.

    Runs of fixed-size fields (integers, timestamps and the octets that
    carry consecutive bits) are merged into one C{struct.Struct} each;
    strings and tables are read in between.

    Use L{field_codec} to share one instance per layout.

    @ivar types: the wire types of the fields.
    """

    __slots__ = ("_count", "_steps", "types")

    def __init__(self, types: Sequence[str]) -> None:
        """
        @param types: the wire types of the fields, in order.
        @raise ValueError: a type is not one of L{FIELD_TYPES}.
        """
        _check_types(types)
        self.types = tuple(types)
        self._count = len(self.types)
        # (kind, field index, fixed run or None)
        steps: list[tuple[int, int, _FixedRun | None]] = []
        run_start = 0
        for index, type_name in enumerate(self.types):
            kind = _STEP_KINDS.get(type_name)
            if kind is not None:
                if run_start < index:
                    run = _FixedRun(run_start, self.types[run_start:index])
                    steps.append((_FIXED_STEP, run_start, run))
                steps.append((kind, index, None))
                run_start = index + 1
        if run_start < self._count:
            run = _FixedRun(run_start, self.types[run_start:])
            steps.append((_FIXED_STEP, run_start, run))
        self._steps = tuple(steps)

    def __repr__(self) -> str:
        return f"FieldCodec({self.types!r})"

    def encode(self, values: Sequence[Any]) -> bytes:
        """
        Encode one value per field.

        Integers must fit their unsigned type; bits take C{True} and
        C{False} (or 1 and 0);
        timestamps take an C{int} or a C{datetime}; short strings take
        C{str} or C{bytes}; long strings take C{bytes}, C{bytearray},
        C{memoryview} or C{str}; tables take a mapping or C{None}.

        @raise LocalProtocolError: the wrong number of values, or a value that
            does not fit its field (the message names the field's index).
        """
        if len(values) != self._count:
            raise _local(f"expected {self._count} field values, got {len(values)}")
        parts = []
        for kind, index, run in self._steps:
            try:
                if kind == _SHORTSTR_STEP:
                    parts.append(_encode_shortstr(values[index]))
                elif run is not None:
                    parts.append(run.encode(values))
                elif kind == _LONGSTR_STEP:
                    parts.append(_encode_longstr(values[index]))
                else:
                    parts.append(encode_table(values[index]))
            except LocalProtocolError as e:
                if run is not None:
                    raise
                raise _local(f"field {index}: {e.reply_text}") from None
        return b"".join(parts)

    def decode(self, buf: Buffer, offset: int) -> tuple[list[Any], int]:
        """
        Decode the fields starting at C{offset}.

        @param buf: the bytes to read; a C{bytearray} or C{memoryview} is
            copied from C{offset} on.
        @return: the values in order (C{bool} for bits) and the offset just
            past the last field.  Bytes after it are left alone.
        @raise RemoteProtocolError: (502) the fields are truncated or a table
            among them is malformed.
        @raise ValueError: C{offset} is negative.
        """
        if type(buf) is not bytes or offset < 0:
            values, end = self.decode(_tail(buf, offset), 0)
            return values, end + offset
        out: list[Any] = []
        pos = offset
        try:
            for kind, _, run in self._steps:
                if kind == _SHORTSTR_STEP:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > len(buf):
                        raise _truncated("short string")
                    raw = buf[start:pos]
                    try:
                        out.append(raw.decode())
                    except UnicodeDecodeError:
                        out.append(raw)
                elif run is not None:
                    unpacked = run.unpack_from(buf, pos)
                    pos += run.size
                    if run.bit_layout is None:
                        out.extend(unpacked)
                    else:
                        out.extend(
                            [
                                (unpacked[s] & m) != 0 if m else unpacked[s]
                                for s, m in run.bit_layout
                            ]
                        )
                elif kind == _LONGSTR_STEP:
                    value, pos = _decode_longstr(buf, pos)
                    out.append(value)
                else:
                    value, pos = _table_at(buf, pos, len(buf), False, 1)
                    out.append(value)
        except (struct.error, IndexError):
            raise _truncated("method arguments") from None
        return out, pos


@lru_cache(maxsize=512)
def field_codec(types: tuple[str, ...]) -> FieldCodec:
    """
    The shared L{FieldCodec} for C{types}.

    @raise ValueError: a type is not one of L{FIELD_TYPES}.
    """
    return FieldCodec(types)


# ---------------------------------------------------------------------------
# Content properties

_PropertyDecoder: TypeAlias = Callable[[bytes, int], tuple[Any, int]]


def _present_bit(buf: bytes, pos: int) -> tuple[Any, int]:
    return True, pos


def _property_encoder(type_name: str) -> Callable[[Any], bytes] | None:
    if type_name == "bit":
        return None
    if type_name == "shortstr":
        return _encode_shortstr
    if type_name == "longstr":
        return _encode_longstr
    if type_name == "table":
        return encode_table
    return _fixed_encoder(type_name)


def _property_decoder(type_name: str) -> _PropertyDecoder:
    if type_name == "bit":
        return _present_bit
    if type_name == "shortstr":
        return _decode_shortstr
    if type_name == "longstr":
        return _decode_longstr
    if type_name == "table":
        return _decode_table_field
    return _fixed_decoder(type_name)


class PropertiesCodec:
    """
    Encodes and decodes the property list of a content header: the property
    flag words, then the value of each property that is present.

    Property I{i} (from 0) is flagged by bit C{15 - i % 15} of flag word
    C{i // 15}; bit 0 of a flag word says another one follows.  A C{bit}
    property has no value: its flag is the value.

    Decoding plans are cached per flag pattern, so decoding a header costs a
    dict lookup plus the work for the properties that are present.

    @ivar types: the wire types of the properties.
    """

    __slots__ = (
        "_absent",
        "_count",
        "_decoders",
        "_encoders",
        "_flags",
        "_plans",
        "_words",
        "types",
    )

    def __init__(self, types: Sequence[str]) -> None:
        """
        @param types: the wire types of the class's properties, in spec order.
        @raise ValueError: a type is not one of L{FIELD_TYPES}.
        """
        _check_types(types)
        self.types = tuple(types)
        self._count = len(self.types)
        self._words = max(1, -(-self._count // 15))
        self._encoders = tuple(_property_encoder(t) for t in self.types)
        self._decoders = tuple(_property_decoder(t) for t in self.types)
        # each property's flag, as a bit of all the flag words read as one
        # big-endian integer
        self._flags = tuple(
            1 << (16 * (self._words - 1 - i // 15) + 15 - i % 15) for i in range(self._count)
        )
        self._absent: list[Any] = [False if t == "bit" else None for t in self.types]
        self._plans: dict[int, tuple[tuple[int, _PropertyDecoder], ...]] = {}

    def __repr__(self) -> str:
        return f"PropertiesCodec({self.types!r})"

    def encode(self, values: Sequence[Any | None]) -> bytes:
        """
        Encode the property flags and the values that are present.

        Only as many flag words as the present properties need are written.

        @param values: one per property, C{None} when absent.  A C{bit}
            property is present when true.  Values are typed as for
            L{FieldCodec.encode}.
        @raise LocalProtocolError: the wrong number of values, or a value that
            does not fit its property (the message names its index).
        """
        if len(values) != self._count:
            raise _local(f"expected {self._count} property values, got {len(values)}")
        flags = 0
        parts = [b""]
        encoders = self._encoders
        for index in range(self._count):
            value = values[index]
            if value is None:
                continue
            encoder = encoders[index]
            if encoder is None:
                if value:
                    flags |= self._flags[index]
                continue
            flags |= self._flags[index]
            try:
                parts.append(encoder(value))
            except LocalProtocolError as e:
                raise _local(f"property {index}: {e.reply_text}") from None
        if self._words == 1:
            parts[0] = _U16.pack(flags)
        else:
            parts[0] = self._flag_words(flags)
        return b"".join(parts)

    def _flag_words(self, flags: int) -> bytes:
        words = [(flags >> (16 * (self._words - 1 - w))) & 0xFFFF for w in range(self._words)]
        while len(words) > 1 and not words[-1]:
            words.pop()
        for w in range(len(words) - 1):
            words[w] |= 1
        return struct.pack(f">{len(words)}H", *words)

    def decode(self, buf: Buffer, offset: int) -> tuple[list[Any | None], int]:
        """
        Decode a property list starting at C{offset}.

        @param buf: the bytes to read; a C{bytearray} or C{memoryview} is
            copied from C{offset} on.
        @return: one value per property (C{None} when absent, C{True} or
            C{False} for a C{bit} property) and the offset just past the list.
        @raise RemoteProtocolError: (502) the list is truncated, flags a
            property the class does not have, or has a malformed table.
        @raise ValueError: C{offset} is negative.
        """
        if type(buf) is not bytes or offset < 0:
            values, end = self.decode(_tail(buf, offset), 0)
            return values, end + offset
        try:
            flags = _U16.unpack_from(buf, offset)[0]
            pos = offset + 2
            if flags & 1:
                flags, pos = self._more_flags(buf, flags, pos)
            plan = self._plans.get(flags)
            if plan is None:
                plan = self._plan(flags)
            values = self._absent.copy()
            for index, decoder in plan:
                values[index], pos = decoder(buf, pos)
        except (struct.error, IndexError):
            raise _truncated("content properties") from None
        return values, pos

    def _more_flags(self, buf: bytes, flags: int, pos: int) -> tuple[int, int]:
        """
        Read the flag words after the first; return them all as one integer.
        """
        words = 1
        word = flags
        while word & 1:
            if words == self._words:
                raise _syntax(
                    f"content properties have more than {words} flag words "
                    f"for {self._count} properties"
                )
            word = _U16.unpack_from(buf, pos)[0]
            pos += 2
            words += 1
            flags = (flags << 16) | word
        return flags, pos

    def _plan(self, flags: int) -> tuple[tuple[int, _PropertyDecoder], ...]:
        """
        Which properties C{flags} (all flag words as one integer) names, in
        order, with their decoders.
        """
        words = max(1, -(-flags.bit_length() // 16))
        continuation = sum(1 << (16 * w) for w in range(words))
        # line the words read up with self._flags, continuation bits cleared
        wanted = (flags & ~continuation) << (16 * (self._words - words))
        plan = []
        for index, mask in enumerate(self._flags):
            if wanted & mask:
                plan.append((index, self._decoders[index]))
                wanted &= ~mask
        if wanted:
            raise _syntax(f"content properties flag a property past the {self._count} defined")
        result = tuple(plan)
        if len(self._plans) < _PLAN_CACHE_SIZE:
            self._plans[flags] = result
        return result
