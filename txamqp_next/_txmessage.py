# -*- test-case-name: tests.test_txmessage -*-
"""
txAMQP's view of a received method: L{TxMessage}.

txAMQP handed code a C{Message} for every method it received: a reply, a
delivery, the C{channel.close} inside a C{ChannelClosed}.  Code written for
it reads C{message.method.klass.name} (C{"basic"}), C{message.method.name}
(C{"get-ok"}), C{message.fields} (the values in the spec's order),
C{message[0]}, fields by name (C{message.delivery_tag}) and
C{message.content}.  L{TxMessage} gives that view of one of txamqp_next's
method objects.

It sits below L{txamqp_next.errors} because the C{Closed} exceptions carry
one as C{args[0]}; it imports nothing of txamqp_next and reads the method
object only through its C{SPEC}, C{_layout} and field attributes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClassInfo", "MethodInfo", "TxMessage"]


class ClassInfo:
    """
    An AMQP class as txAMQP's spec named it: C{name} and C{id}.
    """

    __slots__ = ("id", "name")

    def __init__(self, name: str, id: int) -> None:
        self.name = name
        self.id = id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassInfo):
            return NotImplemented
        return (self.name, self.id) == (other.name, other.id)

    def __hash__(self) -> int:
        return hash((self.name, self.id))

    def __repr__(self) -> str:
        return f"Class(name={self.name}, id={self.id})"


class MethodInfo:
    """
    A method of the spec as txAMQP described it.

    @ivar klass: its L{ClassInfo}.
    @ivar name: the spec's name (C{"get-ok"}).
    @ivar id: the method id.
    @ivar content: whether it carries content.
    @ivar synchronous: whether it expects a reply.
    @ivar field_names: every field's Python name, in the spec's order,
        reserved ones included.
    """

    __slots__ = ("content", "field_names", "id", "klass", "name", "synchronous")

    def __init__(self, spec: Any) -> None:
        self.klass = ClassInfo(spec.class_name, spec.class_id)
        self.name: str = spec.name
        self.id: int = spec.id
        self.content: bool = spec.content
        self.synchronous: bool = spec.synchronous
        self.field_names: tuple[str, ...] = tuple(f.name for f in spec.fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MethodInfo):
            return NotImplemented
        return (self.klass, self.name, self.id) == (other.klass, other.name, other.id)

    def __hash__(self) -> int:
        return hash((self.klass, self.name, self.id))

    def __repr__(self) -> str:
        return f"Method(name={self.klass.name}.{self.name}, id={self.id})"


class TxMessage:
    """
    A received method, and its content if it has any, read the way txAMQP
    code reads a C{txamqp.message.Message}.

    @ivar method: the L{MethodInfo} (C{.klass.name}, C{.name}).
    @ivar fields: the field values in the spec's order; a reserved field
        has its zero value.
    @ivar content: the txAMQP C{Content} (body and properties), or C{None}.
    @ivar decoded: the txamqp_next method object itself.
    """

    __slots__ = ("content", "decoded", "fields", "method")

    def __init__(self, decoded: Any, content: Any = None) -> None:
        self.decoded = decoded
        self.method = MethodInfo(decoded.SPEC)
        self.fields = [
            default if name is None else getattr(decoded, name) for name, default in decoded._layout
        ]
        self.content = content

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        decoded = object.__getattribute__(self, "decoded")
        key = "no_wait" if name == "nowait" else name
        if key in decoded.field_names:
            return getattr(decoded, key)
        raise AttributeError(f"{decoded.NAME} has no field {name!r}")

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, index: int) -> Any:
        """
        A field by position; the position just past the last field is the
        content, as with txAMQP.
        """
        if index == len(self.fields):
            return self.content
        return self.fields[index]

    def __repr__(self) -> str:
        return f"{self.method!r} {self.fields!r} content = {self.content!r}"
