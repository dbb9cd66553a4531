# -*- test-case-name: tests.test_compile -*-
"""
Generated encoders and decoders for the fields of one method or one set of
content properties.

L{FieldCodec} and L{PropertiesCodec} in C{_codec} interpret a list of wire
types at run time: they are the reference.  The functions here turn the
same list into Python source once, per method class (and per property flag
pattern), so the hot paths (publish, deliver, content headers, acks) run
straight-line code: one C{struct} call per run of fixed-size fields, short
strings sliced and decoded in place, one C{bytes.join} per frame.

The generated code follows the reference codec's layout rules exactly and
hands anything unusual back to it: values that are not the common Python
type (C{bytes} for a short string, say) or do not fit, and every malformed
input.  So the reference decides all errors and the generated code only has
to agree with it on well-formed data, which C{tests.test_compile} checks
for every method of every spec.

For C{basic.deliver} the decoder reads (the payload starts after the class
and method ids)::

    def decode(buf, n):
        p = 4
        e = p + 1 + buf[p]
        v0 = buf[p + 1 : e]
        try:
            v0 = v0.decode()
        except UnicodeDecodeError:
            pass
        p = e
        v1, o2, = _u3(buf, p)
        p += 9
        v2 = (o2 & 1) != 0
        ...
        if p != n:
            raise _Fallback
        s = _new(_F)
        s.consumer_tag = v0
        ...
        s.__class__ = _C
        return s

(see L{txamqp_next._methods._slot_classes} for the last lines).  The
source of each class's codec is kept as its C{_source} attribute.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from txamqp_next._codec import (
    _OCTETS,
    FIELD_TYPES,
    _common_table,
    _decode_longstr,
    _encode_longstr,
    _table_at,
    _timestamp_seconds,
    bit_value,
    encode_table,
)

__all__ = ["Fallback", "Source", "decoder_lines", "encoder_parts"]

# struct format codes of the unsigned fixed-size wire types
_FORMATS = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}
_VARIABLE = frozenset({"shortstr", "longstr", "table"})


class Fallback(Exception):
    """
    Raised inside generated code when the input is one the reference codec
    must handle (to produce its result or its error).
    """


class Source:
    """
    Lines of generated Python source and the names they refer to.

    @ivar scope: the globals the compiled code sees.
    """

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {
            "_O": _OCTETS,
            "_Fallback": Fallback,
            "_str_encode": str.encode,
            "_longstr": _encode_longstr,
            "_decode_longstr": _decode_longstr,
            "_table": encode_table,
            "_common_table": _common_table,
            "_table_at": _table_at,
            "_ts": _timestamp_seconds,
            "_b": bit_value,
        }
        self._count = 0

    def name(self, value: Any, prefix: str = "_k") -> str:
        """
        Put C{value} in the scope under a fresh name and return the name.
        """
        self._count += 1
        name = f"{prefix}{self._count}"
        self.scope[name] = value
        return name

    def compile(self, source: str, filename: str) -> dict[str, Any]:
        """
        Compile and run C{source} in the scope; return the scope.
        """
        exec(compile(source, filename, "exec"), self.scope)
        return self.scope


def _groups(types: Sequence[str]) -> list[tuple[str, list[tuple[int, str]]]]:
    """
    Split the fields into steps as the reference L{FieldCodec} does: each
    variable-size field alone (C{"shortstr"}, C{"longstr"}, C{"table"}), and
    each run of fixed-size fields between them (C{"fixed"}).
    """
    for type_name in types:
        if type_name not in FIELD_TYPES:
            raise ValueError(f"unknown wire type {type_name!r}")
    groups: list[tuple[str, list[tuple[int, str]]]] = []
    for index, type_name in enumerate(types):
        if type_name in _VARIABLE:
            groups.append((type_name, [(index, type_name)]))
        elif groups and groups[-1][0] == "fixed":
            groups[-1][1].append((index, type_name))
        else:
            groups.append(("fixed", [(index, type_name)]))
    return groups


def _struct_layout(run: list[tuple[int, str]]) -> tuple[str, list[list[tuple[int, str, int]]]]:
    """
    The C{struct} format of a fixed run and, per struct value, its fields as
    C{(index, type, bit mask)}: one field, or up to eight consecutive bits
    sharing an octet (least significant first; any other field ends the
    octet).
    """
    fmt = ">"
    values: list[list[tuple[int, str, int]]] = []
    bits: list[tuple[int, str, int]] | None = None
    for index, type_name in run:
        if type_name == "bit":
            if bits is None or len(bits) == 8:
                bits = []
                values.append(bits)
                fmt += "B"
            bits.append((index, type_name, 1 << len(bits)))
        else:
            bits = None
            fmt += _FORMATS[type_name]
            values.append([(index, type_name, 0)])
    return fmt, values


def encoder_parts(
    src: Source, types: Sequence[str], args: Sequence[str | None], prefix: bytes = b""
) -> tuple[list[str], list[str], int, list[str]]:
    """
    Generate the encoding of fields.

    @param types: the wire types, in order.
    @param args: per field, an expression for its value, or C{None} for a
        reserved field (encoded as its zero value).
    @param prefix: constant bytes to put first (the method ids).
    @return: C{(lines, parts, size, sizes)}: statements to run first, the
        expressions of the byte strings to join in order, the constant part
        of their total length, and the expressions of its variable part.
        A statement raises when a value is not of the common type or does
        not fit, so the caller can fall back to the reference codec.
    """
    lines: list[str] = []
    parts: list[str] = []
    sizes: list[str] = []
    size = len(prefix)
    constant = prefix

    def flush() -> None:
        nonlocal constant
        if constant:
            parts.append(src.name(constant))
            constant = b""

    for kind, fields in _groups(types):
        if kind == "fixed":
            fmt, values = _struct_layout(fields)
            codec = struct.Struct(fmt)
            size += codec.size
            exprs = []
            for value in values:
                if value[0][1] == "bit":
                    terms = [
                        f"({mask} if _b({args[index]}) else 0)"
                        for index, _, mask in value
                        if args[index] is not None
                    ]
                    exprs.append(" | ".join(terms) if terms else None)
                else:
                    index, type_name, _ = value[0]
                    arg = args[index]
                    if arg is not None and type_name == "timestamp":
                        arg = f"_ts({arg})"
                    exprs.append(arg)
            if all(e is None for e in exprs):
                constant += codec.pack(*(0 for _ in exprs))
                continue
            flush()
            pack = src.name(codec.pack, "_p")
            parts.append(f"{pack}({', '.join(e or '0' for e in exprs)})")
            continue
        index, type_name = fields[0]
        arg = args[index]
        if arg is None:
            # a reserved string or table is empty
            empty = b"\x00" if type_name == "shortstr" else b"\x00\x00\x00\x00"
            constant += empty
            size += len(empty)
            continue
        flush()
        var = f"b{index}"
        if type_name == "shortstr":
            # str.encode refuses anything but str: bytes go to the reference
            # codec; an over-long string makes _O[...] raise IndexError
            lines.append(f"{var} = _str_encode({arg})")
            lines.append(f"h{index} = _O[len({var})]")
            parts += [f"h{index}", var]
            size += 1
        elif type_name == "longstr":
            lines.append(f"{var} = _longstr({arg})")
            parts.append(var)
        else:
            # a plain dict takes the fast path straight away; it raises on
            # anything uncommon, and the caller falls back
            lines.append(f"{var} = _common_table({arg}) if type({arg}) is dict else _table({arg})")
            parts.append(var)
        sizes.append(f"len({var})")
    flush()
    return lines, parts, size, sizes


def decoder_lines(src: Source, types: Sequence[str], targets: Sequence[str | None]) -> list[str]:
    """
    Generate the decoding of fields from C{buf} (C{bytes}, of length C{n})
    starting at offset C{p}, leaving C{p} just past them.

    @param targets: per field, the variable to assign, or C{None} to read
        and drop it (a reserved field).
    @return: the statements.  They raise L{Fallback}, C{IndexError},
        C{struct.error} or L{RemoteProtocolError} on truncated or malformed
        input, or leave C{p} past C{n}: the caller must check that C{p == n}
        at the end.  The reference codec then reports what is wrong.
    """
    lines: list[str] = []
    for kind, fields in _groups(types):
        if kind == "fixed":
            fmt, values = _struct_layout(fields)
            codec = struct.Struct(fmt)
            names = []
            after = []
            for number, value in enumerate(values):
                if value[0][1] == "bit":
                    octet = f"o{value[0][0]}"
                    names.append(octet)
                    for index, _, mask in value:
                        target = targets[index]
                        if target is not None:
                            after.append(f"{target} = ({octet} & {mask}) != 0")
                else:
                    index = value[0][0]
                    names.append(targets[index] or f"_{number}")
            if all(targets[index] is None for index, _ in fields):
                # reserved: skipped; reading past the end is caught later,
                # when the next field is read or the end is checked
                lines.append(f"p += {codec.size}")
                continue
            unpack = src.name(codec.unpack_from, "_u")
            lines.append(f"{', '.join(names)}, = {unpack}(buf, p)")
            lines.append(f"p += {codec.size}")
            lines += after
            continue
        index, type_name = fields[0]
        target = targets[index] or f"_r{index}"
        if type_name == "shortstr":
            # no bounds check: a length past the end leaves p > n for good,
            # which the next read or the caller's final p == n check catches
            lines += [
                "e = p + 1 + buf[p]",
                f"{target} = buf[p + 1 : e]",
                "try:",
                f"    {target} = {target}.decode()",
                "except UnicodeDecodeError:",
                "    pass",
                "p = e",
            ]
        elif type_name == "longstr":
            lines.append(f"{target}, p = _decode_longstr(buf, p)")
        else:
            lines.append(f"{target}, p = _table_at(buf, p, n, False, 1)")
    return lines
