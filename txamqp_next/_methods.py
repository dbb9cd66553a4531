# -*- test-case-name: tests.test_methods -*-
"""
Method and content-property classes, built from a loaded L{Spec}.

L{methods_for} turns a spec into a L{MethodSet}: one real class per method
(C{Queue.Declare}, C{Basic.Publish}) and one properties class per content
class (C{Basic.Properties}).  Instances are frozen, use slots and take
keyword arguments only; every field has a default (0, C{""}, C{b""},
C{False}, or a fresh empty dict for a table).  Reserved fields are not
attributes: the encoder writes their zero value and the decoder drops them.

Each class carries its wire identity and protocol facts as class variables:
C{NAME} (C{"queue.declare"}), C{CLASS_ID}, C{METHOD_ID}, C{SYNCHRONOUS},
C{CONTENT}, C{RESPONSES} (the classes that answer it), C{SPEC} and
C{field_names}.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from txamqp_next import _compile
from txamqp_next._codec import FieldCodec, PropertiesCodec, field_codec
from txamqp_next._docs import method_doc, properties_doc
from txamqp_next._frames import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    body_frames,
)
from txamqp_next.errors import (
    COMMAND_INVALID,
    NOT_IMPLEMENTED,
    SYNTAX_ERROR,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from txamqp_next.spec import (
    ClassSpec,
    FieldSpec,
    MethodSpec,
    Spec,
    SpecError,
    class_name,
    python_name,
    spec_name,
)

__all__ = ["EXTENSIONS_RECEIVED", "Method", "MethodSet", "Properties", "is_empty", "methods_for"]

#: Methods RabbitMQ sends to clients whatever a spec file says of their
#: direction: consumer cancel notifications, publisher confirms and
#: connection blocking.  The plain 0-9-1 file lists C{basic.cancel} and
#: C{basic.ack} as sent by clients only.
EXTENSIONS_RECEIVED: frozenset[str] = frozenset(
    {"basic.cancel", "basic.ack", "basic.nack", "connection.blocked", "connection.unblocked"}
)

_MISSING: Any = object()
_ZERO: dict[str, Any] = {
    "octet": 0,
    "short": 0,
    "long": 0,
    "longlong": 0,
    "timestamp": 0,
    "bit": False,
    "shortstr": "",
    "longstr": b"",
}
_IDS = struct.Struct(">HH")
_HEADER = struct.Struct(">HHQ")
# the content header with its first flag word
_HEADER_FLAGS = struct.Struct(">HHQH")
_unpack_header = _HEADER_FLAGS.unpack_from
_ENVELOPE = struct.Struct(">BHI")
_END = bytes([FRAME_END])
_METHOD_KEY = struct.Struct(">I").unpack_from

# How many flag patterns per properties class get a compiled decoder; a peer
# sending ever new patterns cannot grow it (the reference codec reads those).
_FLAG_DECODERS = 256

_F = TypeVar("_F", bound="_Frozen")


class _Frozen:
    """
    The shared machinery of methods and properties: keyword-only
    construction with defaults, immutability, equality and a readable repr.
    """

    __slots__ = ()

    field_names: ClassVar[tuple[str, ...]] = ()
    # (name, default, default is a factory) for each public field
    _defaults: ClassVar[tuple[tuple[str, Any, bool], ...]] = ()
    _setters: ClassVar[tuple[Callable[[Any, Any], None], ...]] = ()

    def __new__(cls: type[_F], **kwargs: Any) -> _F:
        # replaced in every generated class by _install_constructors
        raise TypeError(f"{cls.__qualname__} is abstract")

    @classmethod
    def _from_values(cls: type[_F], values: list[Any]) -> _F:
        # replaced in every generated class by _install_constructors
        raise TypeError(f"{cls.__qualname__} is abstract")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__qualname__} is immutable; use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__qualname__} is immutable")

    def replace(self: _F, **changes: Any) -> _F:
        """
        A copy with some fields changed.
        """
        values = {name: getattr(self, name) for name in self.field_names}
        values.update(changes)
        return type(self)(**values)

    def items(self) -> Iterator[tuple[str, Any]]:
        """
        The fields as C{(name, value)} pairs in wire order.
        """
        for name in self.field_names:
            yield name, getattr(self, name)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.field_names)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._shown())
        return f"{type(self).__qualname__}({shown})"

    def _shown(self) -> Iterator[tuple[str, Any]]:
        return self.items()


class Method(_Frozen):
    """
    Base class of every generated method class.

    The class variables are upper case so they never clash with a field
    (C{connection.close} has a C{class_id} field).

    @cvar NAME: the full spec name, C{"queue.declare"}.
    @cvar CLASS_ID: the AMQP class id.
    @cvar METHOD_ID: the method id.
    @cvar SYNCHRONOUS: whether the sender waits for a reply.
    @cvar CONTENT: whether the method carries a content header and body.
    @cvar RESPONSES: the classes of the methods that answer it.
    @cvar SPEC: the L{MethodSpec} it was built from.
    @cvar CONNECTION_CLASS: whether it belongs to the C{connection} class
        (and so travels on channel 0).
    @cvar CLIENT_SENDS: whether a client may send it (the spec's chassis
        names the server).
    @cvar CLIENT_RECEIVES: whether a client may receive it.
    @cvar IS_REPLY: whether it answers some synchronous method.
    """

    __slots__ = ()

    NAME: ClassVar[str]
    CLASS_ID: ClassVar[int]
    METHOD_ID: ClassVar[int]
    SYNCHRONOUS: ClassVar[bool]
    CONTENT: ClassVar[bool]
    RESPONSES: ClassVar[tuple[type[Method], ...]] = ()
    SPEC: ClassVar[MethodSpec]
    _codec: ClassVar[FieldCodec]
    # wire order: public field name, or None for a reserved field
    _layout: ClassVar[tuple[tuple[str | None, Any], ...]]
    _public_positions: ClassVar[tuple[int, ...]]
    _has_no_wait: ClassVar[bool] = False
    _prefix: ClassVar[bytes]
    CONNECTION_CLASS: ClassVar[bool]
    CLIENT_SENDS: ClassVar[bool]
    CLIENT_RECEIVES: ClassVar[bool]
    IS_REPLY: ClassVar[bool] = False
    # the compiled decoder of the arguments: (payload, its length) -> method
    _decode: ClassVar[Callable[[bytes, int], Method]]
    # the generated source of the compiled codec, for reading and tests
    _source: ClassVar[str] = ""

    if TYPE_CHECKING:
        # the fields are generated from the spec; to a type checker any
        # attribute of a method is a field value
        def __getattr__(self, name: str) -> Any: ...

    @property
    def expects_reply(self) -> bool:
        """
        Whether the peer will answer this call: it is synchronous and was not
        sent with C{no_wait=True}.
        """
        if not self.SYNCHRONOUS:
            return False
        return not (self._has_no_wait and getattr(self, "no_wait", False))

    def encode(self) -> bytes:
        """
        The method frame payload: class id, method id and the arguments.

        @raise LocalProtocolError: a field's value does not fit its wire type;
            the message names the field.
        """
        # replaced in every generated class by _install_codec
        return self._encode_generic()

    def encode_frame(self, channel: int) -> bytes:
        """
        The whole method frame for C{channel}: envelope, payload, frame end.

        @raise LocalProtocolError: as for L{encode}.
        """
        # replaced in every generated class by _install_codec
        payload = self._encode_generic()
        return _ENVELOPE.pack(FRAME_METHOD, channel, len(payload)) + payload + _END

    def _encode_generic(self) -> bytes:
        """
        L{encode} through the reference L{FieldCodec}: the compiled encoder
        falls back to it for unusual values and for every error.
        """
        values = [
            default if name is None else getattr(self, name) for name, default in self._layout
        ]
        try:
            return self._prefix + self._codec.encode(values)
        except ProtocolError as e:
            raise self._explain(values, e) from None

    def _explain(self, values: list[Any], error: ProtocolError) -> LocalProtocolError:
        for (name, _), spec, value in zip(self._layout, self.SPEC.fields, values, strict=True):
            try:
                field_codec((spec.type,)).encode([value])
            except ProtocolError as e:
                return _field_error(
                    self.NAME, name or spec.name, spec.type, value, e, self._secret(name)
                )
        return LocalProtocolError(COMMAND_INVALID, f"{self.NAME}: {error.reply_text}")

    def _secret(self, name: str | None) -> bool:
        """
        Whether a field carries credentials, never to be shown.
        """
        if name == "response":
            return self.NAME in ("connection.start-ok", "connection.secure-ok")
        return name == "new_secret"

    def _shown(self) -> Iterator[tuple[str, Any]]:
        for name, value in self.items():
            yield name, "<hidden>" if self._secret(name) else value


class Properties(_Frozen):
    """
    Base class of the content properties of a class (C{Basic.Properties}).
    Every property defaults to C{None}, meaning absent.
    """

    __slots__ = ()

    CLASS_ID: ClassVar[int]
    _codec: ClassVar[PropertiesCodec]
    # field_names as a set, for MethodSet.properties_from
    _name_set: ClassVar[frozenset[str]] = frozenset()
    # first flag word to its compiled decoder
    _flag_decoders: ClassVar[dict[int, Callable[[bytes, int], Properties]]]
    _source: ClassVar[str] = ""

    @classmethod
    def _compile_decoder(cls, flags: int) -> Callable[[bytes, int], Properties]:
        return _compile_properties_decoder(cls, flags)

    def encode_header(self, body_size: int) -> bytes:
        """
        The content header frame payload for a body of C{body_size} bytes.

        @raise LocalProtocolError: a property does not fit its wire type (the
            message names it), or C{body_size} is not a 64-bit size.
        """
        # replaced in every generated class of up to 15 properties
        return self._encode_header_generic(body_size)

    def header_frame(self, channel: int, body_size: int) -> bytes:
        """
        The whole content header frame for C{channel}.

        @raise LocalProtocolError: as for L{encode_header}.
        """
        # replaced in every generated class of up to 15 properties
        payload = self._encode_header_generic(body_size)
        return _ENVELOPE.pack(FRAME_HEADER, channel, len(payload)) + payload + _END

    def content_frames(
        self, channel: int, body: bytes | bytearray | memoryview, frame_max: int
    ) -> list[bytes]:
        """
        The content header frame and the body frames of a message with
        these properties: C{body} split so no frame exceeds C{frame_max}
        (C{0}: no limit).  When the body fits one frame, header and body
        come as one byte string.

        @raise LocalProtocolError: as for L{encode_header}.
        """
        # replaced in every generated class of up to 15 properties
        return [self.header_frame(channel, len(body)), *body_frames(channel, body, frame_max)]

    def _encode_header_generic(self, body_size: int) -> bytes:
        """
        L{encode_header} through the reference L{PropertiesCodec}.
        """
        values = [getattr(self, name) for name in self.field_names]
        try:
            return _HEADER.pack(self.CLASS_ID, 0, body_size) + self._codec.encode(values)
        except struct.error:
            raise LocalProtocolError(
                COMMAND_INVALID, f"body size {body_size!r} is not a 64-bit size"
            ) from None
        except ProtocolError as e:
            raise self._explain(values, e) from None

    def _explain(self, values: list[Any], error: ProtocolError) -> LocalProtocolError:
        for name, spec_type, value in zip(self.field_names, self._codec.types, values, strict=True):
            if value is None:
                continue
            try:
                field_codec((spec_type,)).encode([value])
            except ProtocolError as e:
                return _field_error(type(self).__qualname__, name, spec_type, value, e, False)
        return LocalProtocolError(COMMAND_INVALID, f"{type(self).__qualname__}: {error.reply_text}")

    def _shown(self) -> Iterator[tuple[str, Any]]:
        return ((n, v) for n, v in self.items() if v is not None)


def _field_error(
    owner: str, name: str, wire_type: str, value: Any, error: ProtocolError, secret: bool
) -> LocalProtocolError:
    """
    The error for a value that does not fit its field; a secret value (a
    password) is never quoted.
    """
    if secret:
        return LocalProtocolError(
            COMMAND_INVALID, f"{owner}: field {name} ({wire_type}) cannot hold the value given"
        )
    reason = (
        error.reply_text.split(": ", 1)[-1]
        if error.reply_text.startswith("field ")
        else error.reply_text
    )
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return LocalProtocolError(
        COMMAND_INVALID, f"{owner}: field {name} ({wire_type}) cannot hold {shown}: {reason}"
    )


class _ClassNamespace:
    """
    The method classes of one AMQP class, as attributes: C{Queue.Declare}.
    """

    def __init__(self, name: str, spec: ClassSpec) -> None:
        self.__name__ = name
        self.spec = spec
        self.methods: dict[str, type[Method]] = {}

    def __getattr__(self, name: str) -> type[Method]:
        try:
            return self.methods[name]
        except KeyError:
            raise AttributeError(f"{self.__name__} has no method {name!r}") from None

    def __dir__(self) -> list[str]:
        return sorted(self.methods)

    def __repr__(self) -> str:
        return f"<AMQP class {self.spec.name} ({self.spec.id})>"


class MethodSet:
    """
    The method and property classes of one spec.

    Use it as a namespace (C{ms.Basic.Publish}), by full name
    (C{ms["basic.publish"]}) or by wire ids (C{ms.by_key[(60, 40)]}).

    @ivar spec: the spec the classes were built from.
    @ivar by_key: C{(class_id, method_id)} to method class.
    @ivar by_name: full name (C{"basic.publish"}) to method class.
    @ivar properties: class id to the properties class, for classes that
        carry content (an empty one for a class without properties).
    """

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.by_key: dict[tuple[int, int], type[Method]] = {}
        self.by_name: dict[str, type[Method]] = {}
        self.properties: dict[int, type[Properties]] = {}
        # (class_id << 16 | method_id) to the compiled decoder
        self._decoders: dict[int, Callable[[bytes, int], Method]] = {}
        self._namespaces: dict[str, _ClassNamespace] = {}
        for cspec in spec.classes:
            ns = _ClassNamespace(class_name(cspec.name), cspec)
            self._namespaces[ns.__name__] = ns
            for mspec in cspec.methods:
                cls = _method_class(ns.__name__, mspec)
                ns.methods[cls.__name__] = cls
                self.by_key[(mspec.class_id, mspec.id)] = cls
                self._decoders[mspec.class_id << 16 | mspec.id] = cls._decode
                self.by_name[mspec.full_name] = cls
            if cspec.properties or any(m.content for m in cspec.methods):
                # a class with content methods has a header even when it
                # defines no properties (0-8's test.content)
                props = _properties_class(ns.__name__, cspec)
                ns.methods["Properties"] = props  # type: ignore[assignment]
                self.properties[cspec.id] = props
        for cls in self.by_name.values():
            prefix = cls.NAME.split(".")[0]
            try:
                cls.RESPONSES = tuple(self.by_name[f"{prefix}.{r}"] for r in cls.SPEC.responses)
            except KeyError as e:
                raise SpecError(
                    f"{spec.source}: {cls.NAME} names response {e.args[0]!r}, which does not exist"
                ) from None
        #: every method class that answers some synchronous method
        self.replies: frozenset[type[Method]] = frozenset(
            r for cls in self.by_name.values() for r in cls.RESPONSES
        )
        for reply in self.replies:
            reply.IS_REPLY = True
        # the hot paths, as plain functions: cheaper to call than methods
        self.decode = _decode_function(self)  # type: ignore[method-assign]
        self.decode_header = _decode_header_function(self)  # type: ignore[method-assign]

    def __getattr__(self, name: str) -> _ClassNamespace:
        try:
            return self._namespaces[name]
        except KeyError:
            raise AttributeError(f"the spec has no class {name!r}") from None

    def __getitem__(self, full_name: str) -> type[Method]:
        return self.by_name[spec_name(full_name)]

    def get(self, full_name: str) -> type[Method] | None:
        """
        The method class for a full name (any spelling), or C{None} when
        the spec does not define it.
        """
        return self.by_name.get(spec_name(full_name))

    def require(self, full_name: str) -> type[Method]:
        """
        The method class for a full name (any spelling).

        @raise LocalProtocolError: the spec does not define it (540, not
            implemented); the message names the spec.
        """
        cls = self.get(full_name)
        if cls is None:
            raise LocalProtocolError(
                NOT_IMPLEMENTED, f"{self.spec.describe()} defines no method {spec_name(full_name)}"
            )
        return cls

    def make(
        self,
        method: str | type[Method],
        args: tuple[Any, ...] = (),
        fields: Mapping[str, Any] | None = None,
    ) -> Method:
        """
        Build a method from arguments written for any AMQP version, keeping
        exactly the fields this spec defines.

          - C{args} are the fields in the spec's order, reserved ones
            included (txAMQP's positional calls: C{exchange_declare(0, "x",
            "direct")} passes the 0-9 C{ticket} first); a value given for a
            reserved field is dropped.
          - C{fields} are keyword arguments under any spelling of their name
            (C{no_wait}, C{nowait}, C{"no-wait"}, 0-8's C{"no wait"}).
          - A name this spec's method lacks is accepted only with an empty
            value (C{None}, C{0}, C{False}, C{""}, C{b""} or an empty
            container): C{basic_consume(arguments={})} works with 0-8,
            which has no C{arguments}; C{basic_consume(arguments={"x": 1})}
            does not.

        @param method: the method's full name (C{"basic.consume"}) or class.
        @raise TypeError: too many positional arguments, a field given twice,
            or a non-empty value for a field the spec lacks; the message
            names the spec.
        @raise LocalProtocolError: the spec has no such method.
        """
        cls = self.require(method) if isinstance(method, str) else method
        spec = cls.SPEC
        if len(args) > len(spec.fields):
            raise TypeError(
                f"{cls.NAME} takes at most {len(spec.fields)} positional arguments in "
                f"{self.spec.describe()} ({', '.join(f.name for f in spec.fields)}); "
                f"{len(args)} were given"
            )
        values: dict[str, Any] = {}
        for field_spec, value in zip(spec.fields, args, strict=False):
            if not field_spec.reserved:
                values[field_spec.name] = value
        known = cls.field_names
        for raw, value in (fields or {}).items():
            name = _cached_python_name(raw)
            if name in known:
                if name in values:
                    raise TypeError(
                        f"{cls.NAME} got field {name} twice (in {self.spec.describe()})"
                    )
                values[name] = value
            elif not is_empty(value):
                raise TypeError(
                    f"{cls.NAME} has no field {name} in {self.spec.describe()}; "
                    f"it takes {', '.join(known) or 'none'}"
                )
        return cls(**values)

    def properties_from(self, class_id: int, given: Mapping[str, Any]) -> Properties:
        """
        Content properties from a mapping whose names are written any way
        (C{"delivery-mode"}, 0-8's C{"delivery mode"}, C{delivery_mode}).

        @raise TypeError: a property with a value that the spec does not
            define (0-9-1 has no C{cluster_id}); the message names the spec.
        """
        cls = self.properties[class_id]
        if type(given) is dict and given.keys() <= cls._name_set:
            # every name already a property's own (the usual spelling)
            return cls(**given)
        known = cls.field_names
        values: dict[str, Any] = {}
        for raw, value in given.items():
            name = _cached_python_name(raw)
            if name in known:
                values[name] = value
            elif value is not None:
                raise TypeError(
                    f"{cls.__qualname__} has no property {name} in {self.spec.describe()}; "
                    f"it has {', '.join(known)}"
                )
        return cls(**values)

    def __dir__(self) -> list[str]:
        return sorted(self._namespaces)

    def decode(self, payload: bytes | memoryview, channel: int = 0) -> Method:
        """
        Decode a method frame payload.

        @raise RemoteProtocolError: unknown class or method ids (540), or
            arguments that are malformed, truncated or followed by extra
            bytes (502).
        """
        # replaced in every instance by a closure over the compiled decoders
        # (see _decode_function), which falls back to the reference decoder
        return self._decode_generic(payload, channel)

    def _decode_generic(self, payload: bytes | memoryview, channel: int = 0) -> Method:
        """
        L{decode} through the reference L{FieldCodec}: the compiled decoders
        fall back to it for every malformed payload.
        """
        if len(payload) < 4:
            raise RemoteProtocolError(
                SYNTAX_ERROR, f"method frame of {len(payload)} bytes is too short", channel
            )
        key = _IDS.unpack_from(payload)
        cls = self.by_key.get(key)
        if cls is None:
            raise RemoteProtocolError(NOT_IMPLEMENTED, f"unknown method {key[0]}.{key[1]}", channel)
        values, end = cls._codec.decode(payload, 4)
        if end != len(payload):
            raise RemoteProtocolError(
                SYNTAX_ERROR,
                f"{cls.NAME} has {len(payload) - end} unexpected trailing bytes",
                channel,
            )
        if len(values) != len(cls.field_names):
            values = [values[i] for i in cls._public_positions]
        return cls._from_values(values)

    def decode_header(
        self, payload: bytes | memoryview, channel: int = 0
    ) -> tuple[int, int, Properties]:
        """
        Decode a content header payload.

        @return: C{(class_id, body_size, properties)}.
        @raise RemoteProtocolError: an unknown class id, or a malformed header.
        """
        # replaced in every instance by a closure over the compiled decoders
        # (see _decode_header_function)
        return self._decode_header_generic(payload, channel)

    def _decode_header_generic(
        self, payload: bytes | memoryview, channel: int = 0
    ) -> tuple[int, int, Properties]:
        """
        L{decode_header} through the reference L{PropertiesCodec}.
        """
        if len(payload) < 14:
            raise RemoteProtocolError(
                SYNTAX_ERROR, f"content header of {len(payload)} bytes is too short", channel
            )
        class_id, _weight, body_size = _HEADER.unpack_from(payload)
        cls = self.properties.get(class_id)
        if cls is None:
            raise RemoteProtocolError(
                NOT_IMPLEMENTED, f"content header for class {class_id} without content", channel
            )
        values, end = cls._codec.decode(payload, _HEADER.size)
        if end != len(payload):
            raise RemoteProtocolError(
                SYNTAX_ERROR, f"content header has {len(payload) - end} trailing bytes", channel
            )
        return class_id, body_size, cls._from_values(values)


def _decode_function(ms: MethodSet) -> Callable[..., Method]:
    """
    L{MethodSet.decode} for C{ms}, as a closure over its decoders.
    """
    decoders = ms._decoders
    generic = ms._decode_generic
    key = _METHOD_KEY

    def decode(payload: bytes | memoryview, channel: int = 0) -> Method:
        if type(payload) is bytes:
            try:
                return decoders[key(payload)[0]](payload, len(payload))
            except Exception:
                pass  # the reference decoder reports what is wrong
        return generic(payload, channel)

    decode.__doc__ = MethodSet.decode.__doc__
    return decode


def _decode_header_function(ms: MethodSet) -> Callable[..., tuple[int, int, Properties]]:
    """
    L{MethodSet.decode_header} for C{ms}, as a closure over its decoders.
    """
    properties = ms.properties
    generic = ms._decode_header_generic
    unpack = _unpack_header

    def decode_header(payload: bytes | memoryview, channel: int = 0) -> tuple[int, int, Properties]:
        if type(payload) is bytes:
            try:
                class_id, _weight, body_size, flags = unpack(payload)
                cls = properties[class_id]
                decode = cls._flag_decoders.get(flags) or cls._compile_decoder(flags)
                return class_id, body_size, decode(payload, len(payload))
            except Exception:
                pass  # the reference decoder reports what is wrong
        return generic(payload, channel)

    decode_header.__doc__ = MethodSet.decode_header.__doc__
    return decode_header


@functools.lru_cache(maxsize=512)
def _cached_python_name(raw: str) -> str:
    return python_name(raw)


def is_empty(value: object) -> bool:
    """
    Whether a field value says nothing: C{None}, zero, C{False}, an empty
    string or an empty container.
    """
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, (str, bytes, bytearray, Mapping, list, tuple)):
        return len(value) == 0
    return False


def _setters(cls: type[_Frozen]) -> tuple[Callable[[Any, Any], None], ...]:
    return tuple(getattr(cls, name).__set__ for name in cls.field_names)


def _unknown_keywords(cls: type[_Frozen], unknown: dict[str, Any]) -> None:
    names = ", ".join(sorted(unknown))
    raise TypeError(
        f"{cls.__qualname__}() got unexpected keyword argument(s): {names}; "
        f"it takes {', '.join(cls.field_names) or 'none'}"
    )


def _install_constructors(cls: type[_Frozen], fields: type) -> None:
    """
    Give a generated class its C{__new__} (keyword-only, with the fields'
    defaults, so C{help()} shows the real signature) and C{_from_values}
    (the decoder's positional constructor).

    They are compiled from source, as C{dataclasses} does, because these
    constructors run for every message published or delivered.  Field names
    are identifiers checked by the spec loader; values never appear in the
    source.  C{fields} is the class's slot holder (see L{_slot_classes}):
    the constructors fill an instance of it with plain attribute stores,
    then give it its public class.  For C{Basic.Publish} the result reads::

        def __new__(cls, *, exchange=_d0, routing_key=_d1, mandatory=_d2,
                    immediate=_d3, **_extra):
            if _extra:
                _unknown(cls, _extra)
            if cls is not _C:
                return _subclass(cls, exchange, routing_key, mandatory, immediate)
            self = _new(_F)
            self.exchange = exchange
            ...
            self.__class__ = _C
            return self

    An instance of a subclass (one the application made) is filled through
    the slots' descriptors instead.
    """
    cls._setters = _setters(cls)
    scope: dict[str, Any] = {
        "_new": object.__new__,
        "_unknown": _unknown_keywords,
        "_F": fields,
        "_C": cls,
    }
    params = []
    new_body = []
    sub_body = []
    make_body = []
    names = []
    for i, (name, default, factory) in enumerate(cls._defaults):
        assert name.isidentifier(), name
        names.append(name)
        scope[f"_s{i}"] = cls._setters[i]
        if factory:
            params.append(f"{name}=None")
            new_body.append(f"    self.{name} = _d{i}() if {name} is None else {name}")
            sub_body.append(f"    _s{i}(self, _d{i}() if {name} is None else {name})")
        else:
            params.append(f"{name}=_d{i}")
            new_body.append(f"    self.{name} = {name}")
            sub_body.append(f"    _s{i}(self, {name})")
        scope[f"_d{i}"] = default
        make_body.append(f"    self.{name} = values[{i}]")
    signature = ", ".join(["cls", "*", *params, "**_extra"] if params else ["cls", "**_extra"])
    source = "\n".join(
        [
            f"def __new__({signature}):",
            "    if _extra:",
            "        _unknown(cls, _extra)",
            "    if cls is not _C:",
            f"        return _subclass({', '.join(['cls', *names])})",
            "    self = _new(_F)",
            *new_body,
            "    self.__class__ = _C",
            "    return self",
            f"def _subclass({', '.join(['cls', *names])}):",
            "    self = _new(cls)",
            *sub_body,
            "    return self",
            "def _from_values(cls, values):",
            "    self = _new(_F)",
            *make_body,
            "    self.__class__ = _C",
            "    return self",
        ]
    )
    exec(compile(source, f"<txamqp_next {cls.__qualname__}>", "exec"), scope)
    new = scope["__new__"]
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    cls.__new__ = staticmethod(new)  # type: ignore[method-assign]
    cls._from_values = classmethod(scope["_from_values"])  # type: ignore[assignment]


def _slot_classes(
    name: str, names: tuple[str, ...], base: type[_F], ns: dict[str, Any]
) -> type[_F]:
    """
    Build a method or properties class in two layers: a plain class holding
    the slots, and the public frozen class on top of it (and of C{base}),
    adding no slots of its own.

    Storing into a slot of the plain class is a plain attribute store, much
    cheaper than going around the frozen class's C{__setattr__}; the
    generated decoders fill a plain instance and then set its C{__class__}
    to the public class, which CPython allows because the two have the same
    layout.  Nothing else ever sees the plain class.
    """
    fields = type(f"{name}Fields", (), {"__slots__": names, "__module__": __name__})
    ns = {**ns, "__slots__": ()}
    cls: type[_F] = type(name, (fields, base), ns)
    _install_constructors(cls, fields)
    return cls


def _defaults(fields: tuple[FieldSpec, ...]) -> tuple[tuple[str, Any, bool], ...]:
    result = []
    for f in fields:
        if f.type == "table":
            result.append((f.name, dict, True))
        else:
            result.append((f.name, _ZERO[f.type], False))
    return tuple(result)


def _method_class(namespace: str, spec: MethodSpec) -> type[Method]:
    public = tuple(f for f in spec.fields if not f.reserved)
    names = tuple(f.name for f in public)
    ns: dict[str, Any] = {
        "__qualname__": f"{namespace}.{class_name(spec.name)}",
        "__doc__": method_doc(spec, params=False),
        "NAME": spec.full_name,
        "CLASS_ID": spec.class_id,
        "METHOD_ID": spec.id,
        "SYNCHRONOUS": spec.synchronous,
        "CONTENT": spec.content,
        "SPEC": spec,
        "field_names": names,
        "_defaults": _defaults(public),
        "_codec": field_codec(tuple(f.type for f in spec.fields)),
        "_layout": tuple(
            (None if f.reserved else f.name, _ZERO.get(f.type, {}) if f.reserved else None)
            for f in spec.fields
        ),
        "_public_positions": tuple(i for i, f in enumerate(spec.fields) if not f.reserved),
        "_has_no_wait": "no_wait" in names,
        "_prefix": _IDS.pack(spec.class_id, spec.id),
        "CONNECTION_CLASS": spec.class_name == "connection",
        "CLIENT_SENDS": "server" in spec.chassis,
        "CLIENT_RECEIVES": "client" in spec.chassis or spec.full_name in EXTENSIONS_RECEIVED,
    }
    cls = _slot_classes(class_name(spec.name), names, Method, ns)
    _install_method_codec(cls, spec)
    return cls


def _install_method_codec(cls: type[Method], spec: MethodSpec) -> None:
    """
    Compile C{encode}, C{encode_frame} and the decoder of a method class.

    For C{Basic.Publish} the encoder reads::

        def encode_frame(self, channel):
            try:
                b2 = _str_encode(self.exchange)
                h2 = _O[len(b2)]
                b3 = _str_encode(self.routing_key)
                h3 = _O[len(b3)]
                return b"".join((_env(1, channel, 9 + len(b2) + len(b3)),
                                 _k1, h2, b2, h3, b3,
                                 _p2((1 if self.mandatory else 0) | (2 if self.immediate else 0)),
                                 _END))
            except Exception:
                payload = _generic(self)
            return _env(1, channel, len(payload)) + payload + _END

    where C{_k1} holds the class and method ids and the reserved ticket.
    Anything unusual (a C{bytes} exchange name, a value that does not fit)
    goes to the reference encoder, which produces the bytes or the error.
    """
    src = _compile.Source()
    src.scope.update({"_generic": Method._encode_generic, "_env": _ENVELOPE.pack, "_END": _END})
    types = [f.type for f in spec.fields]
    args = [None if f.reserved else f"self.{f.name}" for f in spec.fields]
    lines, parts, size, sizes = _compile.encoder_parts(src, types, args, cls._prefix)
    body = [f"        {line}" for line in lines]
    size_expr = " + ".join([str(size), *sizes])
    targets = [None if f.reserved else f"v{i}" for i, f in enumerate(spec.fields)]
    decode = [f"    {line}" for line in _compile.decoder_lines(src, types, targets)]
    stores = [f"    s.{f.name} = v{i}" for i, f in enumerate(spec.fields) if not f.reserved]
    src.scope.update({"_new": object.__new__, "_F": cls.__mro__[1], "_C": cls})
    source = "\n".join(
        [
            "def encode(self):",
            "    try:",
            *body,
            f"        return b''.join(({', '.join(parts)},))",
            "    except Exception:",
            "        return _generic(self)",
            "def encode_frame(self, channel):",
            "    try:",
            *body,
            f"        return b''.join((_env({FRAME_METHOD}, channel, {size_expr}), "
            f"{', '.join(parts)}, _END))",
            "    except Exception:",
            "        payload = _generic(self)",
            f"    return _env({FRAME_METHOD}, channel, len(payload)) + payload + _END",
            "def decode(buf, n):",
            "    p = 4",
            *decode,
            "    if p != n:",
            "        raise _Fallback",
            "    s = _new(_F)",
            *stores,
            "    s.__class__ = _C",
            "    return s",
        ]
    )
    scope = src.compile(source, f"<txamqp_next {cls.__qualname__} codec>")
    for name in ("encode", "encode_frame"):
        function = scope[name]
        function.__qualname__ = f"{cls.__qualname__}.{name}"
        function.__doc__ = getattr(Method, name).__doc__
        setattr(cls, name, function)
    cls._decode = staticmethod(scope["decode"])
    cls._source = source


def _properties_class(namespace: str, spec: ClassSpec) -> type[Properties]:
    names = tuple(f.name for f in spec.properties)
    ns: dict[str, Any] = {
        "__qualname__": f"{namespace}.Properties",
        "__doc__": properties_doc(spec),
        "CLASS_ID": spec.id,
        "field_names": names,
        "_name_set": frozenset(names),
        "_defaults": tuple((n, None, False) for n in names),
        "_codec": PropertiesCodec(tuple(f.type for f in spec.properties)),
    }
    cls = _slot_classes("Properties", names, Properties, ns)
    cls._flag_decoders = {}
    if len(names) <= 15:
        _install_properties_encoder(cls, spec)
    return cls


def _flag(index: int) -> int:
    """
    The flag of property C{index} in the first flag word.
    """
    return 1 << (15 - index)


def _install_properties_encoder(cls: type[Properties], spec: ClassSpec) -> None:
    """
    Compile C{encode_header} and C{header_frame} of a properties class with
    at most 15 properties (one flag word).  Each property present adds its
    flag and its bytes; for C{Basic.Properties} the start reads::

        def header_frame(self, channel, body_size):
            try:
                f = 0
                size = 14
                parts = [None, None]
                if self.content_type is not None:
                    v = self.content_type
                    f |= 32768
                    b = _str_encode(v)
                    parts += (_O[len(b)], b)
                    size += 1 + len(b)
                ...
    """
    src = _compile.Source()
    src.scope.update(
        {
            "_generic": Properties._encode_header_generic,
            "_env": _ENVELOPE.pack,
            "_head": _HEADER_FLAGS.pack,
            "_END": _END,
        }
    )
    body = ["        f = 0", "        size = 14", "        parts = [None, None]"]
    for index, prop in enumerate(spec.properties):
        flag = _flag(index)
        if prop.type == "bit":
            body += [f"        if self.{prop.name}:", f"            f |= {flag}"]
            continue
        lines, parts, size, sizes = _compile.encoder_parts(src, [prop.type], ["v"])
        body += [
            f"        if self.{prop.name} is not None:",
            f"            v = self.{prop.name}",
            f"            f |= {flag}",
        ]
        body += [f"            {line}" for line in lines]
        body.append(f"            parts += ({', '.join(parts)},)")
        body.append(f"            size += {' + '.join([str(size), *sizes])}")
    header = f"_head({spec.id}, 0, body_size, f)"
    source = "\n".join(
        [
            "def header_frame(self, channel, body_size):",
            "    try:",
            *body,
            f"        parts[0] = _env({FRAME_HEADER}, channel, size)",
            f"        parts[1] = {header}",
            "        parts.append(_END)",
            "        return b''.join(parts)",
            "    except Exception:",
            "        payload = _generic(self, body_size)",
            f"    return _env({FRAME_HEADER}, channel, len(payload)) + payload + _END",
            "def encode_header(self, body_size):",
            "    try:",
            *body,
            "        del parts[0]",
            f"        parts[0] = {header}",
            "        return b''.join(parts)",
            "    except Exception:",
            "        return _generic(self, body_size)",
            "def content_frames(self, channel, body, frame_max):",
            "    body_size = len(body)",
            f"    if not body_size or (frame_max and body_size > frame_max - {FRAME_OVERHEAD}):",
            "        return [self.header_frame(channel, body_size), "
            "*_body_frames(channel, body, frame_max)]",
            "    try:",
            *body,
            f"        parts[0] = _env({FRAME_HEADER}, channel, size)",
            f"        parts[1] = {header}",
            f"        parts += (_ENV_END, _env({FRAME_BODY}, channel, body_size), body, _END)",
            "        return [b''.join(parts)]",
            "    except Exception:",
            "        payload = _generic(self, body_size)",
            f"    return [b''.join((_env({FRAME_HEADER}, channel, len(payload)), payload, _END,",
            f"                      _env({FRAME_BODY}, channel, body_size), body, _END))]",
        ]
    )
    src.scope.update({"_body_frames": body_frames, "_ENV_END": _END})
    scope = src.compile(source, f"<txamqp_next {cls.__qualname__} codec>")
    for name in ("encode_header", "header_frame", "content_frames"):
        function = scope[name]
        function.__qualname__ = f"{cls.__qualname__}.{name}"
        function.__doc__ = getattr(Properties, name).__doc__
        setattr(cls, name, function)
    cls._source = source


def _compile_properties_decoder(
    cls: type[Properties], flags: int
) -> Callable[[bytes, int], Properties]:
    """
    Compile the decoder of a content header whose only flag word is
    C{flags}: it reads exactly the properties flagged, in order.

    @raise _compile.Fallback: C{flags} has the continuation bit or flags a
        property the class does not have, or the class has its share of
        compiled decoders already; the reference decoder deals with those.
    """
    names = cls.field_names
    types = cls._codec.types
    present = [i for i in range(min(len(names), 15)) if flags & _flag(i)]
    if flags & 1 or flags != sum(_flag(i) for i in present):
        raise _compile.Fallback()
    if len(cls._flag_decoders) >= _FLAG_DECODERS:
        raise _compile.Fallback()
    src = _compile.Source()
    src.scope.update({"_new": object.__new__, "_F": cls.__mro__[1], "_C": cls})
    if not flags:
        # no property: every such header decodes to the same values (none
        # is a table, which could be changed), so one object serves them
        # all; made by the reference decoder
        values, _ = cls._codec.decode(_HEADER_FLAGS.pack(cls.CLASS_ID, 0, 0, 0), _HEADER.size)
        src.scope["_EMPTY"] = cls._from_values(values)
        body = ["    if n != 14:", "        raise _Fallback", "    return _EMPTY"]
    else:
        stored = [i for i in present if types[i] != "bit"]
        lines = _compile.decoder_lines(src, [types[i] for i in stored], [f"v{i}" for i in stored])
        stores = []
        for i, name in enumerate(names):
            if i in stored:
                stores.append(f"    s.{name} = v{i}")
            elif types[i] == "bit":
                stores.append(f"    s.{name} = {i in present}")
            else:
                stores.append(f"    s.{name} = None")
        body = [
            "    p = 14",
            *[f"    {line}" for line in lines],
            "    if p != n:",
            "        raise _Fallback",
            "    s = _new(_F)",
            *stores,
            "    s.__class__ = _C",
            "    return s",
        ]
    source = "\n".join(["def decode(buf, n):", *body])
    scope = src.compile(source, f"<txamqp_next {cls.__qualname__} decoder {flags:#06x}>")
    decode: Callable[[bytes, int], Properties] = scope["decode"]
    cls._flag_decoders[flags] = decode
    return decode


@functools.lru_cache(maxsize=32)
def methods_for(spec: Spec) -> MethodSet:
    """
    The method classes for a spec, built once per spec object.
    """
    return MethodSet(spec)
