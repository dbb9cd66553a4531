# -*- test-case-name: tests.test_connection -*-
"""
Events the sans-IO connection hands to its driver.

L{Connection.receive_data} and L{Connection.tick} return lists of these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from txamqp_next._methods import Method, Properties
from txamqp_next.errors import ChannelClosed as ChannelClosedError
from txamqp_next.errors import ConnectionClosed as ConnectionClosedError
from txamqp_next.errors import ProtocolError

_E = TypeVar("_E", bound="Event")

__all__ = [
    "ChannelClosed",
    "ConnectionClosed",
    "ConnectionOpened",
    "ContentReceived",
    "Event",
    "MethodReceived",
    "ReplyReceived",
]


class Event:
    """
    Base class of the core's events (frozen dataclasses).
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ConnectionOpened(Event):
    """
    The handshake finished: C{connection.open-ok} arrived.

    @ivar server_properties: what the broker said of itself in
        C{connection.start} (product, version, capabilities, ...).
    @ivar channel_max: the negotiated highest channel id.
    @ivar frame_max: the negotiated largest frame, in bytes.
    @ivar heartbeat: the negotiated heartbeat interval in seconds, 0 for none.
    """

    server_properties: Mapping[str, Any]
    channel_max: int
    frame_max: int
    heartbeat: int


@dataclass(frozen=True, slots=True)
class MethodReceived(Event):
    """
    A method without content that answers no call arrived on C{channel}:
    something the broker sent on its own (C{basic.ack} in confirm mode,
    C{basic.cancel}, C{channel.flow}, C{connection.blocked}, ...), or on
    channel 0 the broker's C{connection.start} and C{connection.tune},
    which the core answers itself.
    """

    channel: int
    method: Method


@dataclass(frozen=True, slots=True)
class ReplyReceived(Event):
    """
    The reply to the synchronous call outstanding on C{channel} arrived
    (C{queue.declare-ok}, C{basic.get-ok} with its content, ...).  The core
    sends one synchronous call per channel at a time, so a reply always
    answers the oldest call still waiting on its channel.

    @ivar properties: the content properties when the reply carries
        content (C{basic.get-ok}), else C{None}.
    @ivar body: the content body, or C{b""}.
    """

    channel: int
    method: Method
    properties: Properties | None = None
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ContentReceived(Event):
    """
    A method with its content that answers no call arrived whole:
    C{basic.deliver} or C{basic.return}.

    @ivar body: the body, always C{bytes}.
    """

    channel: int
    method: Method
    properties: Properties
    body: bytes


@dataclass(frozen=True, slots=True)
class ChannelClosed(Event):
    """
    A channel closed.

    @ivar error: C{None} when we closed it and the broker agreed
        (C{close-ok}: this event is the reply to our C{channel.close}); the
        typed L{errors.ChannelClosed} when the broker
        closed it; a L{ProtocolError} when the core closed it because of a
        channel-level fault (a message over the size cap).  Everything
        outstanding on the channel should fail with it.
    """

    channel: int
    error: ChannelClosedError | ProtocolError | None


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """
    The connection closed: C{error} is C{None} after our own close was
    agreed, the typed L{errors.ConnectionClosed} when the broker closed it,
    or L{errors.HeartbeatTimeout} when the peer fell silent.  The driver
    should write what is left to send and drop the transport.
    """

    error: ConnectionClosedError | None


def _maker(cls: type[_E]) -> Callable[..., _E]:
    """
    A positional constructor for the frozen event class C{cls}, for the
    connection's hot paths (one event per message).

    A frozen dataclass sets each field through C{object.__setattr__}; this
    fills a plain twin class with the same slots by ordinary attribute
    stores instead and then gives the instance C{cls} as its class, which
    CPython allows because the two have the same layout.  The result is the
    same object C{cls(...)} would build.
    """
    names: tuple[str, ...] = cls.__slots__
    assert names == tuple(f.name for f in fields(cls)), names  # type: ignore[arg-type]
    for field_name in names:
        assert field_name.isidentifier(), field_name
    twin = type(f"_{cls.__name__}Fields", cls.__bases__, {"__slots__": names})
    scope: dict[str, Any] = {"_new": object.__new__, "_T": twin, "_C": cls}
    source = "\n".join(
        [
            f"def make({', '.join(names)}):",
            "    self = _new(_T)",
            *[f"    self.{field_name} = {field_name}" for field_name in names],
            "    self.__class__ = _C",
            "    return self",
        ]
    )
    exec(compile(source, f"<txamqp_next {cls.__name__} maker>", "exec"), scope)
    make: Callable[..., _E] = scope["make"]
    return make


#: C{ContentReceived(channel, method, properties, body)}, faster.
content_received = _maker(ContentReceived)
#: C{MethodReceived(channel, method)}, faster.
method_received = _maker(MethodReceived)
#: C{ReplyReceived(channel, method, properties, body)}, faster.
reply_received = _maker(ReplyReceived)
