# -*- test-case-name: tests.test_errors -*-
"""
Exceptions raised by txamqp_next.

Three families:

  - L{ProtocolError}: somebody broke the AMQP protocol.
    L{RemoteProtocolError} means the peer sent bytes we cannot accept;
    L{LocalProtocolError} means the application asked for something the
    protocol does not allow (a 300-byte short string, a call on a closed
    channel).  Each carries the AMQP C{reply_code} the connection (or the
    channel, for soft codes) should be closed with.
  - L{Closed}: the broker closed a channel (L{ChannelClosed}, a soft error)
    or the connection (L{ConnectionClosed}, a hard error).  Subclasses name
    the spec's reply codes (L{NotFound}, L{PreconditionFailed}, ...).
  - L{SpecError}: a spec file could not be loaded.

All of them derive from L{AMQPError}.
"""

from __future__ import annotations

from typing import Any, ClassVar

from txamqp_next._txmessage import TxMessage

__all__ = [
    "AMQPError",
    "AMQPNotImplemented",
    "AMQPSyntaxError",
    "AccessRefused",
    "AuthenticationError",
    "CertificateVerifyError",
    "ChannelClosed",
    "ChannelError",
    "Closed",
    "CommandInvalid",
    "ConnectionClosed",
    "ConnectionForced",
    "ContentTooLarge",
    "FrameError",
    "HeartbeatTimeout",
    "InternalError",
    "InvalidPath",
    "LocalProtocolError",
    "NoConsumers",
    "NoFreeChannel",
    "NoRoute",
    "NotAllowed",
    "NotFound",
    "PreconditionFailed",
    "ProtocolError",
    "PublishBufferFull",
    "RemoteProtocolError",
    "ResourceError",
    "ResourceLocked",
    "SpecError",
    "TLSError",
    "UnexpectedFrame",
    "channel_error_for",
    "connection_error_for",
]


class AMQPError(Exception):
    """
    Base class of every exception txamqp_next raises on purpose.
    """


class SpecError(AMQPError, ValueError):
    """
    An AMQP spec file could not be loaded: it is not XML, not an AMQP spec,
    or a version we do not speak (0-10, 1.0).  The message names the file
    and what was found.
    """


# Reply codes from the 0-9-1 spec, used where no spec object is at hand.
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541


class ProtocolError(AMQPError):
    """
    The AMQP protocol was broken.

    Every exception of this family is built the same way:
    C{(reply_code, reply_text, channel=0)}.

    @ivar reply_code: the AMQP reply code to close with (501 frame error,
        502 syntax error, 503 command invalid, 505 unexpected frame, ...).
    @ivar reply_text: a human-readable description.
    @ivar channel: the channel the fault was seen on, C{0} for the
        connection itself.
    """

    def __init__(self, reply_code: int, reply_text: str, channel: int = 0) -> None:
        super().__init__(reply_code, reply_text, channel)
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.channel = channel

    def __str__(self) -> str:
        where = f" on channel {self.channel}" if self.channel else ""
        return f"{self.reply_code} {self.reply_text}{where}"


class RemoteProtocolError(ProtocolError):
    """
    The peer sent something that breaks the protocol: a malformed frame, a
    truncated table, a method out of turn.  The connection cannot go on; it
    should be closed with C{reply_code}.
    """


class LocalProtocolError(ProtocolError):
    """
    The application asked for something the protocol does not allow: a value
    that does not fit its field, a method on a closed channel, a second
    handshake.  Nothing was sent.
    """


class NoFreeChannel(LocalProtocolError):
    """
    Every channel id up to the connection's C{channel_max} is in use, so no
    channel can be opened until one closes.
    """


class Closed(AMQPError):
    """
    A channel or the connection was closed.  (txAMQP's C{client.Closed}.)

    Every exception of this family is built the same way:
    C{(reply_code, reply_text, class_id, method_id, method=..., reason=...)}.

    As with txAMQP, C{args[0]} says why: the broker's C{channel.close} or
    C{connection.close} as a txAMQP message (C{e.args[0].reply_code},
    C{e.args[0].method.klass.name}, C{e.args[0].fields}) when the broker
    closed; otherwise the C{reason} given (the L{twisted.python.failure.Failure}
    of a lost connection), or C{reply_text}.

    @ivar reply_code: the AMQP reply code the close carried (C{0} when the
        transport was lost without a close).
    @ivar reply_text: its text.
    @ivar class_id: the class of the method that caused the close, or C{0}.
    @ivar method_id: the method that caused the close, or C{0}.
    @ivar method: the close method received from the broker, or C{None}.
    """

    reply_code_default: ClassVar[int] = 0

    def __init__(
        self,
        reply_code: int | None = None,
        reply_text: str = "",
        class_id: int = 0,
        method_id: int = 0,
        *,
        method: Any = None,
        reason: object = None,
    ) -> None:
        code = self.reply_code_default if reply_code is None else reply_code
        if method is not None:
            why: object = TxMessage(method)
        elif reason is not None:
            why = reason
        else:
            why = reply_text
        super().__init__(why)
        self.reply_code = code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id
        self.method = method

    def __str__(self) -> str:
        text = f"{self.reply_code} {self.reply_text}".strip()
        if self.class_id or self.method_id:
            text += f" (caused by method {self.class_id}.{self.method_id})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reply_code!r}, {self.reply_text!r})"


class ChannelClosed(Closed):
    """
    The broker closed a channel (a soft error).  The connection and other
    channels go on working.
    """


class ConnectionClosed(Closed):
    """
    The connection was closed, by the broker (a hard error), by us, or because
    the transport was lost.
    """


class PublishBufferFull(AMQPError):
    """
    A publish was refused at once because the publishes already held back
    (while publishing is paused) pass the client's C{max_held_bytes}: the
    application publishes without waiting for its earlier publishes or for
    L{AMQClient.when_writable}.  Nothing of the refused message was sent.
    """


class ContentTooLarge(ChannelClosed):
    """
    311: the content was larger than the receiver accepts.  When we refused
    a message ourselves (over the client's C{max_message_size}),
    C{class_id} and C{method_id} name the method that carried it
    (C{basic.deliver}, say).
    """

    reply_code_default = 311


class NoRoute(ChannelClosed):
    """312: a mandatory message could not be routed."""

    reply_code_default = 312


class NoConsumers(ChannelClosed):
    """313: an immediate message found no consumer."""

    reply_code_default = 313


class AccessRefused(ChannelClosed):
    """403: the user may not use this resource."""

    reply_code_default = 403


class NotFound(ChannelClosed):
    """404: the exchange or queue does not exist."""

    reply_code_default = 404


class ResourceLocked(ChannelClosed):
    """405: the resource is exclusively held by another connection."""

    reply_code_default = 405


class PreconditionFailed(ChannelClosed):
    """406: a declared entity exists with other arguments, or similar."""

    reply_code_default = 406


class ConnectionForced(ConnectionClosed):
    """320: an operator closed the connection (or the broker is stopping)."""

    reply_code_default = 320


class InvalidPath(ConnectionClosed):
    """402: the virtual host name was not valid."""

    reply_code_default = 402


class FrameError(ConnectionClosed):
    """501: a frame was malformed."""

    reply_code_default = FRAME_ERROR


class AMQPSyntaxError(ConnectionClosed):
    """502: a frame had an illegal value."""

    reply_code_default = SYNTAX_ERROR


class CommandInvalid(ConnectionClosed):
    """503: a method was sent out of turn."""

    reply_code_default = COMMAND_INVALID


class ChannelError(ConnectionClosed):
    """504: a channel was used that was not open."""

    reply_code_default = CHANNEL_ERROR


class UnexpectedFrame(ConnectionClosed):
    """505: a frame came that was not expected."""

    reply_code_default = UNEXPECTED_FRAME


class ResourceError(ConnectionClosed):
    """506: the broker ran out of a resource."""

    reply_code_default = RESOURCE_ERROR


class NotAllowed(ConnectionClosed):
    """530: the operation is not allowed (a missing vhost, for example)."""

    reply_code_default = NOT_ALLOWED


class AMQPNotImplemented(ConnectionClosed):
    """540: the peer does not implement the method."""

    reply_code_default = NOT_IMPLEMENTED


class InternalError(ConnectionClosed):
    """541: the broker failed internally."""

    reply_code_default = INTERNAL_ERROR


class AuthenticationError(ConnectionClosed):
    """
    The broker refused our credentials (403 during the handshake), or offered
    no mechanism we can use.
    """

    reply_code_default = 403


class HeartbeatTimeout(ConnectionClosed):
    """
    The peer sent nothing for two heartbeat intervals; the connection was
    dropped.
    """

    reply_code_default = 0


class TLSError(ConnectionClosed):
    """
    The TLS handshake failed, so no AMQP was spoken: the broker refused our
    client certificate or asked for one we did not give, or the server on
    that port does not speak TLS.  C{reply_text} names the cause.
    """

    reply_code_default = 0


class CertificateVerifyError(TLSError):
    """
    We did not trust the broker's certificate: it is not signed by a trusted
    CA, has expired, or does not carry the host name we connected to.
    C{reply_text} says which.
    """


_CHANNEL_ERRORS: dict[int, type[ChannelClosed]] = {
    cls.reply_code_default: cls
    for cls in (
        ContentTooLarge,
        NoRoute,
        NoConsumers,
        AccessRefused,
        NotFound,
        ResourceLocked,
        PreconditionFailed,
    )
}

_CONNECTION_ERRORS: dict[int, type[ConnectionClosed]] = {
    cls.reply_code_default: cls
    for cls in (
        ConnectionForced,
        InvalidPath,
        FrameError,
        AMQPSyntaxError,
        CommandInvalid,
        ChannelError,
        UnexpectedFrame,
        ResourceError,
        NotAllowed,
        AMQPNotImplemented,
        InternalError,
    )
}


def channel_error_for(
    reply_code: int,
    reply_text: str = "",
    class_id: int = 0,
    method_id: int = 0,
    *,
    method: Any = None,
) -> ChannelClosed:
    """
    Build the exception for a C{channel.close} from the broker.

    @param method: the C{channel.close} method itself.
    @return: the L{ChannelClosed} subclass named after C{reply_code} (for
        example L{NotFound} for 404), or L{ChannelClosed} itself for a code
        with no subclass.
    """
    cls = _CHANNEL_ERRORS.get(reply_code, ChannelClosed)
    return cls(reply_code, reply_text, class_id, method_id, method=method)


def connection_error_for(
    reply_code: int,
    reply_text: str = "",
    class_id: int = 0,
    method_id: int = 0,
    *,
    method: Any = None,
) -> ConnectionClosed:
    """
    Build the exception for a C{connection.close} from the broker.

    @param method: the C{connection.close} method itself.
    @return: the L{ConnectionClosed} subclass named after C{reply_code} (for
        example L{NotAllowed} for 530), or L{ConnectionClosed} itself for a
        code with no subclass.
    """
    cls = _CONNECTION_ERRORS.get(reply_code, ConnectionClosed)
    return cls(reply_code, reply_text, class_id, method_id, method=method)
