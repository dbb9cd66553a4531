# -*- test-case-name: tests.test_connection -*-
"""
The sans-IO AMQP connection: bytes in, events out; calls in, bytes out.

L{Connection} knows nothing of sockets, reactors or clocks.  Its driver
feeds it received bytes (L{Connection.receive_data}), routes the returned
events, writes whatever L{Connection.data_to_send} returns, and calls
L{Connection.tick} with the time every so often so heartbeats go out and a
silent peer is noticed.

The connection and each channel are state machines: an C{Enum} of states
and one transition table keyed by C{(state, input)}.  A pair missing from
the table is an error: L{RemoteProtocolError} when the broker sent it,
L{LocalProtocolError} when the application asked for it.

Synchronous calls are serialised per channel: one is outstanding, later
calls (and anything sent after them) wait in order until its reply comes.
"""

from __future__ import annotations

import dataclasses
import enum
import platform
import struct
from collections import deque
from collections.abc import Container, Mapping
from typing import Any, Final

from txamqp_next import _frames
from txamqp_next._events import (
    ChannelClosed,
    ConnectionClosed,
    ConnectionOpened,
    Event,
    MethodReceived,
    content_received,
    method_received,
    reply_received,
)
from txamqp_next._frames import FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD
from txamqp_next._methods import Method, MethodSet, Properties, methods_for
from txamqp_next._params import DEFAULT_MAX_MESSAGE_SIZE, ConnectionParameters, Credentials
from txamqp_next.errors import (
    CHANNEL_ERROR,
    COMMAND_INVALID,
    CONTENT_TOO_LARGE,
    FRAME_ERROR,
    REPLY_SUCCESS,
    SYNTAX_ERROR,
    UNEXPECTED_FRAME,
    AuthenticationError,
    ContentTooLarge,
    HeartbeatTimeout,
    LocalProtocolError,
    NoFreeChannel,
    ProtocolError,
    RemoteProtocolError,
    channel_error_for,
    connection_error_for,
)
from txamqp_next.errors import ChannelClosed as ChannelClosedError
from txamqp_next.errors import ConnectionClosed as ConnectionClosedError
from txamqp_next.spec import Spec, load

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ChannelState",
    "Connection",
    "ConnectionState",
    "Credentials",
    "negotiate",
]

PRODUCT: Final = "txamqp_next"
VERSION: Final = "0.1.0.dev0"

#: The capabilities we tell the broker of, each with the methods the client
#: must be able to receive (or send) for it: a capability is advertised only
#: when the loaded spec defines all of them.
CAPABILITY_METHODS: Final[Mapping[str, tuple[str, ...]]] = {
    "publisher_confirms": ("confirm.select", "basic.ack"),
    "consumer_cancel_notify": ("basic.cancel",),
    "exchange_exchange_bindings": ("exchange.bind",),
    "basic.nack": ("basic.nack",),
    "connection.blocked": ("connection.blocked", "connection.unblocked"),
    "authentication_failure_close": ("connection.close",),
    "per_consumer_qos": ("basic.qos",),
    "direct_reply_to": ("basic.consume",),
}


def capabilities(spec: Spec) -> dict[str, bool]:
    """
    The client capabilities to advertise when speaking C{spec}: those whose
    methods the spec defines (a 0-8 spec has no C{basic.nack}, so the broker
    must not send one).
    """
    return {
        name: True
        for name, needed in CAPABILITY_METHODS.items()
        if all(method in spec.method_by_name for method in needed)
    }


class ConnectionState(enum.Enum):
    """
    Where the connection is in its life.
    """

    # members are singletons, equal only to themselves: hashing by identity
    # keeps the transition-table lookups cheap (Enum's own hash is Python)
    __hash__ = object.__hash__

    AWAIT_START = "await-start"
    AWAIT_CREDENTIALS = "await-credentials"
    AWAIT_TUNE = "await-tune"
    AWAIT_OPEN_OK = "await-open-ok"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ChannelState(enum.Enum):
    """
    Where a channel is in its life.
    """

    __hash__ = object.__hash__

    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


# the channel methods that are inputs of the channel table by name; every
# other method received on a channel is the input "receive"
_CHANNEL_METHOD_INPUTS: Final = frozenset(
    {"channel.open-ok", "channel.close", "channel.close-ok", "channel.flow", "channel.flow-ok"}
)

_C = ConnectionState
_CONNECTION_TRANSITIONS: Final[Mapping[tuple[ConnectionState, str], ConnectionState]] = {
    (_C.AWAIT_START, "connection.start"): _C.AWAIT_CREDENTIALS,
    (_C.AWAIT_START, "authenticate"): _C.AWAIT_START,
    (_C.AWAIT_CREDENTIALS, "authenticate"): _C.AWAIT_TUNE,
    (_C.AWAIT_TUNE, "connection.secure"): _C.AWAIT_TUNE,
    (_C.AWAIT_TUNE, "connection.tune"): _C.AWAIT_OPEN_OK,
    (_C.AWAIT_OPEN_OK, "connection.open-ok"): _C.OPEN,
    (_C.OPEN, "connection.blocked"): _C.OPEN,
    (_C.OPEN, "connection.unblocked"): _C.OPEN,
    (_C.OPEN, "connection.update-secret-ok"): _C.OPEN,
    (_C.OPEN, "send"): _C.OPEN,
    (_C.OPEN, "channel-frame"): _C.OPEN,
    (_C.CLOSING, "channel-frame"): _C.CLOSING,
    # the broker may close at any point of the handshake (403 for bad
    # credentials, 530 for a missing vhost) or after
    (_C.AWAIT_START, "connection.close"): _C.CLOSED,
    (_C.AWAIT_CREDENTIALS, "connection.close"): _C.CLOSED,
    (_C.AWAIT_TUNE, "connection.close"): _C.CLOSED,
    (_C.AWAIT_OPEN_OK, "connection.close"): _C.CLOSED,
    (_C.OPEN, "connection.close"): _C.CLOSED,
    (_C.CLOSING, "connection.close"): _C.CLOSED,
    (_C.CLOSING, "connection.close-ok"): _C.CLOSED,
    # while closing, everything but close and close-ok is discarded
    (_C.CLOSING, "connection.blocked"): _C.CLOSING,
    (_C.CLOSING, "connection.unblocked"): _C.CLOSING,
    (_C.CLOSING, "connection.update-secret-ok"): _C.CLOSING,
    # local calls
    (_C.AWAIT_START, "close"): _C.CLOSED,
    (_C.AWAIT_CREDENTIALS, "close"): _C.CLOSED,
    (_C.AWAIT_TUNE, "close"): _C.CLOSED,
    (_C.AWAIT_OPEN_OK, "close"): _C.CLOSING,
    (_C.OPEN, "close"): _C.CLOSING,
}

_Ch = ChannelState
_CHANNEL_TRANSITIONS: Final[Mapping[tuple[ChannelState, str], ChannelState]] = {
    (_Ch.CLOSED, "open"): _Ch.OPENING,
    (_Ch.OPENING, "send"): _Ch.OPENING,
    (_Ch.OPENING, "close"): _Ch.CLOSING,
    (_Ch.OPENING, "channel.open-ok"): _Ch.OPEN,
    (_Ch.OPENING, "channel.close"): _Ch.CLOSED,
    (_Ch.OPEN, "send"): _Ch.OPEN,
    (_Ch.OPEN, "close"): _Ch.CLOSING,
    (_Ch.OPEN, "receive"): _Ch.OPEN,
    (_Ch.OPEN, "channel.flow"): _Ch.OPEN,
    (_Ch.OPEN, "channel.flow-ok"): _Ch.OPEN,
    (_Ch.OPEN, "channel.close"): _Ch.CLOSED,
    (_Ch.OPEN, "fault"): _Ch.CLOSING,
    (_Ch.CLOSING, "receive"): _Ch.CLOSING,
    (_Ch.CLOSING, "channel.flow"): _Ch.CLOSING,
    (_Ch.CLOSING, "channel.flow-ok"): _Ch.CLOSING,
    (_Ch.CLOSING, "channel.open-ok"): _Ch.CLOSING,
    # the broker's close crossed ours: its close-ok for ours is still due
    (_Ch.CLOSING, "channel.close"): _Ch.CLOSING,
    (_Ch.CLOSING, "channel.close-ok"): _Ch.CLOSED,
    (_Ch.CLOSING, "fault"): _Ch.CLOSING,
}

# The states as module constants: the hot paths compare states for every
# frame, and reading a member off its Enum class is slow in Python 3.11.
_CONN_AWAIT_START: Final = ConnectionState.AWAIT_START
_CONN_AWAIT_TUNE: Final = ConnectionState.AWAIT_TUNE
_CONN_CLOSED: Final = ConnectionState.CLOSED
_CONN_CLOSING: Final = ConnectionState.CLOSING
_CONN_OPEN: Final = ConnectionState.OPEN
_CH_CLOSED: Final = ChannelState.CLOSED
_CH_CLOSING: Final = ChannelState.CLOSING
_CH_OPEN: Final = ChannelState.OPEN

# a content header frame without properties (class id, weight 0, body size,
# no flags) and the envelope of the one body frame that follows it
_BARE_CONTENT: Final = struct.Struct(">BHIHHQHBBHI")
_END: Final = bytes([_frames.FRAME_END])
# a basic.ack frame: type, channel, size, class and method ids, delivery
# tag, the multiple bit, frame end
_ACK_FRAME: Final = struct.Struct(">BHIHHQBB")
_ACK_FIELDS: Final = [("delivery_tag", "longlong"), ("multiple", "bit")]
_MAX_LONGLONG: Final = 2**64 - 1
#: the most method frames of content methods kept encoded
_METHOD_FRAME_CACHE: Final = 256
#: the smallest frame_max a broker may propose (0-9-1's frame-min-size,
#: used when a spec does not name it)
FRAME_MIN_SIZE: Final = 4096
#: how many connection.secure challenges are answered before the client
#: gives up on logging in
MAX_SECURE_ROUNDS: Final = 8


def truncate_shortstr(text: str) -> str:
    """
    Cut C{text} so its UTF-8 form fits a short string (255 bytes), without
    splitting a character.
    """
    data = text.encode("utf-8", "replace")
    if len(data) <= 255:
        return text
    return data[:255].decode("utf-8", "ignore")


def _too_large(
    method: Method, channel: int, what: str, size: int, frame_max: int
) -> LocalProtocolError:
    """
    The error for a frame the broker would refuse (501): larger than the
    negotiated C{frame_max}.
    """
    return LocalProtocolError(
        FRAME_ERROR,
        f"{method.NAME} not sent: {what} is {size} bytes, more than frame_max ({frame_max}); "
        "make its tables or properties smaller",
        channel,
    )


def negotiate(client: int | None, server: int) -> int:
    """
    Settle a tuning value as RabbitMQ documents it: when either side says
    C{0} (no limit / no heartbeat) the other side's value wins, otherwise the
    lower one.  A client value of C{None} accepts the server's.
    """
    if client is None:
        return server
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


class _Channel:
    """
    The core's view of one channel.
    """

    __slots__ = (
        "awaiting",
        "content_body",
        "content_method",
        "content_properties",
        "content_received",
        "content_reply",
        "content_size",
        "error",
        "id",
        "pending",
        "state",
    )

    def __init__(self, channel_id: int) -> None:
        self.id = channel_id
        self.state = _CH_CLOSED
        self.awaiting: Method | None = None
        # outbound items waiting for the outstanding synchronous call, each
        # with its frames, or None for a method without content: it is
        # encoded again when sent, so that a thousand calls queued on one
        # channel keep no frames (they were encoded once, to refuse a value
        # that does not fit before anything changed); made when the first
        # one waits (an empty deque is some 600 bytes, and most channels
        # never queue anything)
        self.pending: deque[tuple[Method, list[bytes] | None]] | None = None
        self.content_method: Method | None = None
        # whether the content method answers the outstanding call
        self.content_reply = False
        self.content_properties: Properties | None = None
        self.content_size = 0
        self.content_received = 0
        self.content_body: list[bytes | memoryview] = []
        # why the channel closed while our close-ok is still due (a fault,
        # or the broker's close crossing ours); the application was told
        self.error: ChannelClosedError | None = None


class Connection:
    """
    One AMQP connection, client side, without I/O.

    @param params: what to speak and how to log in (the spec, credentials,
        virtual host, heartbeat, frame and channel limits, client
        properties, locale, largest inbound message): a
        L{ConnectionParameters}; only its protocol fields are read.  When
        its C{credentials} are C{None}, the handshake stops after
        C{connection.start} until L{authenticate} is called.  The heartbeat
        follows RabbitMQ's rules (see L{negotiate}): C{None} accepts the
        broker's interval, C{0} asks for none, which is granted only when
        the broker also proposes 0.
    @param overrides: parameters to change from C{params} (or from the
        defaults), by name: C{Connection(credentials=Credentials(),
        heartbeat=30)}.

    @ivar params: the parameters in force.
    @ivar spec: the loaded L{Spec}.
    @ivar methods: its method classes.
    """

    #: whether L{receive_data} handles the common case of each frame of a
    #: message itself (tests turn it off to compare with the handlers)
    _inline_content = True

    def __init__(self, params: ConnectionParameters | None = None, **overrides: Any) -> None:
        params = params if params is not None else ConnectionParameters(credentials=None)
        if overrides:
            params = dataclasses.replace(params, **overrides)
        self.params = params
        spec = params.spec
        self.spec: Spec = load(spec or "0-9-1") if not isinstance(spec, Spec) else spec
        self.methods: MethodSet = methods_for(self.spec)
        self._decode = self.methods.decode
        self._decode_header = self.methods.decode_header
        self.credentials = params.credentials
        self._start: Method | None = None
        self._secure_rounds = 0
        self.vhost = params.vhost
        self.max_message_size = params.max_message_size
        self._wanted = (params.channel_max, params.frame_max, params.heartbeat)
        self._client_properties = self._build_client_properties(
            params.client_properties, params.connection_name
        )
        self.state = _CONN_AWAIT_START
        self.server_properties: Mapping[str, Any] = {}
        self.channel_max = 0
        self.frame_max = 0
        self.heartbeat = 0
        #: why the connection closed, once a fault or the broker closed it
        self.error: ProtocolError | ConnectionClosedError | None = None
        frame_max = params.frame_max
        self._reader = _frames.FrameReader(
            max(frame_max, 131072) if frame_max else 131072, views=True
        )
        self._outbox: list[bytes] = [self.spec.protocol_header]
        self._channels: dict[int, _Channel] = {}
        # the synchronous connection method waiting for its reply, and those
        # queued behind it
        self._awaiting0: Method | None = None
        self._pending0: deque[Method] = deque()
        self._received = False
        self._sent = False
        self._last_received: float | None = None
        self._last_sent: float | None = None
        self._heartbeat_queued = False
        self._close_ok = self.methods["connection.close-ok"]
        self._channel_close_ok = self.methods["channel.close-ok"]
        #: the empty C{basic} properties: a message sent with this very
        #: object gets the cheapest header
        self.no_properties: Properties = self.methods.properties[60]()
        # id(method) -> (method, channel, its frame) for content methods,
        # see _encode (the entry keeps the object alive, so its id is not
        # reused while cached)
        self._method_frames: dict[int, tuple[Method, int, bytes]] = {}
        # basic.ack, and its ids when its fields are the usual two (see ack)
        ack = self.methods.get("basic.ack")
        self._ack_ids: tuple[int, int] | None = None
        if ack is not None and [(f.name, f.type) for f in ack.SPEC.fields] == _ACK_FIELDS:
            self._ack_ids = (ack.CLASS_ID, ack.METHOD_ID)

    # -- driver side ---------------------------------------------------------

    def data_to_send(self) -> bytes:
        """
        Everything queued for the wire since the last call.
        """
        return b"".join(self.chunks_to_send())

    def chunks_to_send(self) -> list[bytes]:
        """
        Like L{data_to_send}, as a list of byte strings for C{writeSequence}.
        """
        out = self._outbox
        if out:
            self._outbox = []
            self._sent = True
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """
        Feed bytes received from the broker.

        @return: the events they complete, in order.
        @raise RemoteProtocolError: the broker broke the protocol.  The
            connection is then closed: L{data_to_send} holds a
            C{connection.close} carrying the error's reply code, and the
            transport should be dropped once it is written.
        """
        if self.state is _CONN_CLOSED:
            return []
        if not data:
            return []
        self._received = True
        events: list[Event] = []
        try:
            self._reader.feed(data)
            if self.state is _CONN_AWAIT_START and self._awaiting_version_reply():
                return events
            reader = self._reader
            read_frames = reader.read_frames
            channels = self._channels
            decode_header = self._decode_header
            # each kind of frame has its common case of a message's frames
            # on an open channel handled here, where the handler it would
            # go to (the reference, which checks and handles every case)
            # would do the same; anything else goes to the handler
            inline = self._inline_content
            while True:
                frames = read_frames()
                if not frames:
                    break
                for frame_type, channel, payload in frames:
                    # channel 0 is never in channels
                    ch = channels.get(channel)
                    if ch is None or ch.state is _CH_CLOSED or self.state is not _CONN_OPEN:
                        ch = self._frame_channel(frame_type, channel, payload, events)
                        if ch is None:
                            if self.state is _CONN_CLOSED:  # type: ignore[comparison-overlap]
                                return events
                            continue
                    if frame_type == FRAME_BODY:
                        # a whole body in one frame (of bytes, not a view)
                        if (
                            inline
                            and ch.content_size == len(payload)
                            and ch.content_properties is not None
                            and not ch.content_body
                            and ch.state is _CH_OPEN
                            and type(payload) is bytes
                        ):
                            method = ch.content_method
                            assert method is not None
                            if ch.content_reply:
                                event: Event = reply_received(
                                    channel, method, ch.content_properties, payload
                                )
                            else:
                                event = content_received(
                                    channel, method, ch.content_properties, payload
                                )
                            events.append(event)
                            ch.content_received = len(payload)
                            ch.content_method = None
                            ch.content_properties = None
                            if ch.pending:
                                self._flush_pending(ch)
                        else:
                            self._handle_body(ch, payload, events)
                    elif frame_type == FRAME_METHOD:
                        method = self._decode(payload, channel)
                        # a method with content that is no reply (a
                        # delivery, a return: _check_reply would return
                        # False), no content pending
                        if (
                            inline
                            and method.CONTENT
                            and ch.content_method is None
                            and ch.state is _CH_OPEN
                            and method.CLIENT_RECEIVES
                            and not method.IS_REPLY
                        ):
                            ch.content_method = method
                            ch.content_reply = False
                        else:
                            self._handle_channel_method(ch, method, events)
                    else:
                        # a content header (the frame reader refuses
                        # heartbeats off channel 0) for the method before
                        # it, of a message within the size cap
                        method = ch.content_method
                        if (
                            inline
                            and method is not None
                            and ch.content_properties is None
                            and ch.state is _CH_OPEN
                        ):
                            class_id, size, properties = decode_header(payload, channel)
                            if class_id == method.CLASS_ID and size <= self.max_message_size:
                                ch.content_properties = properties
                                ch.content_size = size
                                ch.content_received = 0
                                if not size:
                                    self._deliver(ch, events)
                                continue
                        self._handle_header(ch, payload, events)
                if not reader.buffered:
                    break
        except RemoteProtocolError as e:
            self._fail(e)
            raise
        return events

    def tick(self, now: float) -> list[Event]:
        """
        Let time pass: send a heartbeat when we have been quiet for an
        interval, and give up on a broker silent for two.

        Call it at least twice per heartbeat interval.

        @param now: the current time in seconds, from any monotonic clock.
        @return: a L{ConnectionClosed} event carrying L{HeartbeatTimeout}
            when the broker fell silent, else nothing.
        """
        if not self.heartbeat or self.state not in (_CONN_OPEN, _CONN_CLOSING):
            return []
        last_received, last_sent = self._observe(now)
        if now - last_received >= 2 * self.heartbeat:
            self.state = _CONN_CLOSED
            self._outbox = []
            error = HeartbeatTimeout(
                reply_text=f"no traffic from the broker for {now - last_received:.1f}s "
                f"(heartbeat {self.heartbeat}s)"
            )
            self._drop_channels()
            return [ConnectionClosed(error)]
        if now - last_sent >= self.heartbeat:
            self.send_heartbeat(now)
        return []

    def heartbeat_due(self, now: float) -> bool:
        """
        Whether L{tick} at C{now} would send a heartbeat: heartbeats are on,
        the connection is open and we have sent nothing for an interval.
        """
        if not self.heartbeat or self.state not in (_CONN_OPEN, _CONN_CLOSING):
            return False
        return now - self._observe(now)[1] >= self.heartbeat

    def send_heartbeat(self, now: float | None = None) -> None:
        """
        Queue a heartbeat frame, whether or not one is due (nothing happens
        before the connection is open or after it closed).

        @param now: the time, to count the heartbeat as sent traffic.
        """
        if self.state not in (_CONN_OPEN, _CONN_CLOSING):
            return
        self._outbox.append(_frames.HEARTBEAT)
        if now is not None:
            self._last_sent = now
            self._sent = False
            self._heartbeat_queued = True

    def _observe(self, now: float) -> tuple[float, float]:
        """
        Turn the traffic seen since the last call into times.

        @return: when we last received and last sent anything.
        """
        if self._received or self._last_received is None:
            self._received = False
            self._last_received = now
        if self._sent or self._last_sent is None:
            self._sent = False
            if self._heartbeat_queued and self._last_sent is not None:
                # our own heartbeat went out: it was counted when queued, so
                # idle heartbeats keep to the interval
                self._heartbeat_queued = False
            else:
                self._last_sent = now
        return self._last_received, self._last_sent

    # -- application side ----------------------------------------------------

    def authenticate(self, credentials: Credentials) -> list[Event]:
        """
        Give the credentials to log in with, when the connection was made
        without them.  The handshake goes on once C{connection.start} has
        arrived.

        @return: a L{ConnectionClosed} event when the broker does not offer
            the credentials' mechanism, else nothing.
        @raise LocalProtocolError: the handshake is already past this point.
        """
        self._connection_input("authenticate", local=True)
        self.credentials = credentials
        events: list[Event] = []
        if self.state is _CONN_AWAIT_TUNE:
            self._send_start_ok(events)
        return events

    def channel_state(self, channel: int) -> ChannelState:
        """
        The state of a channel (L{ChannelState.CLOSED} for an unused id).
        """
        ch = self._channels.get(channel)
        return ch.state if ch is not None else _CH_CLOSED

    def open_channel(self, channel: int | None = None) -> int:
        """
        Send C{channel.open}.

        @param channel: the id to use; the lowest free one when omitted.
        @return: the channel id.
        @raise LocalProtocolError: the id is in use or out of range, every id
            is taken, or the connection is not open.
        """
        if channel is None:
            channel = self._free_channel()
        self.send_method(channel, self.methods["channel.open"]())
        return channel

    def close(self, reply_code: int = REPLY_SUCCESS, reply_text: str = "") -> None:
        """
        Start closing the connection (C{connection.close}).  L{ConnectionClosed}
        with no error follows when the broker agrees.  Before the broker has
        tuned us there is nothing to close politely: the state goes straight
        to L{ConnectionState.CLOSED} and the transport should be dropped.
        """
        close = self.methods["connection.close"](
            reply_code=reply_code, reply_text=truncate_shortstr(reply_text)
        )
        frame = _frames.method_frame(0, close.encode())
        self._connection_input("close", local=True)
        if self.state is _CONN_CLOSING:
            self._outbox.append(frame)

    def send_method(
        self,
        channel: int,
        method: Method,
        properties: Properties | None = None,
        body: bytes = b"",
    ) -> None:
        """
        Send a method (with its content, for C{basic.publish}).

        Synchronous methods are serialised per channel: while one waits for
        its reply, later methods on that channel queue behind it, in order.
        C{no_wait=True} makes a synchronous method expect no reply.

        @raise LocalProtocolError: the method is not one a client may send,
            is sent on the wrong channel, its channel is not open, or a value
            does not fit its field.
        """
        if self.state is _CONN_OPEN and method.CLIENT_SENDS and not method.CONNECTION_CLASS:
            # the hot paths (publishes, acks): a method on an open channel
            # with nothing queued, that changes no state
            ch = self._channels.get(channel)
            if ch is not None and ch.state is _CH_OPEN and not ch.pending:
                if method.CONTENT:
                    # publishes; a synchronous content method (0-8's
                    # test.content) takes the long way, which awaits its reply
                    if properties is not None and not method.SYNCHRONOUS:
                        self._outbox += self._encode(channel, method, properties, body)
                        return
                elif not method.expects_reply:
                    self._outbox.append(method.encode_frame(channel))
                    return
        if not method.CLIENT_SENDS:
            raise LocalProtocolError(
                COMMAND_INVALID, f"{method.NAME} is not sent by clients", channel=channel
            )
        is_connection_method = method.CONNECTION_CLASS
        if is_connection_method != (channel == 0):
            where = "channel 0" if is_connection_method else "a channel other than 0"
            raise LocalProtocolError(
                COMMAND_INVALID, f"{method.NAME} must be sent on {where}", channel=channel
            )
        if method.CONTENT and properties is None:
            properties = self.methods.properties[method.CLASS_ID]()
        # encode first: a value that does not fit must change no state
        frames = self._encode(channel, method, properties, body)
        if is_connection_method:
            name = "close" if method.NAME == "connection.close" else "send"
            self._connection_input(name, local=True)
            if self.state is _CONN_CLOSED:
                return
            if name == "send" and method.expects_reply:
                # one synchronous connection method at a time, as on channels
                if self._awaiting0 is not None:
                    self._pending0.append(method)
                    return
                self._awaiting0 = method
            self._outbox.extend(frames)
            return
        if not 0 < channel <= (self.channel_max or 65535):
            raise LocalProtocolError(
                COMMAND_INVALID,
                f"channel {channel} is outside 1..{self.channel_max or 65535}",
                channel=channel,
            )
        self._connection_input("send", local=True)
        ch = self._channels.get(channel)
        if method.NAME == "channel.open":
            if ch is not None:
                raise LocalProtocolError(
                    COMMAND_INVALID,
                    f"channel {channel} is already {ch.state.value}",
                    channel=channel,
                )
            ch = _Channel(channel)
            self._channel_input(ch, "open", local=True)
            self._channels[channel] = ch
        elif ch is None:
            raise LocalProtocolError(
                COMMAND_INVALID, f"channel {channel} is not open", channel=channel
            )
        elif method.NAME == "channel.close":
            # close goes out at once; whatever waited behind an outstanding
            # call is dropped (the driver fails it when the channel closes)
            self._channel_input(ch, "close", local=True)
            ch.pending = None
            ch.awaiting = None
            self._transmit(ch, method, frames)
            return
        else:
            self._channel_input(ch, "send", local=True)
        if ch.pending or (ch.awaiting is not None and method.expects_reply):
            if ch.pending is None:
                ch.pending = deque()
            ch.pending.append((method, frames if method.CONTENT else None))
            return
        self._transmit(ch, method, frames)

    def publish(
        self,
        channel: int,
        body: bytes,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
        immediate: bool = False,
    ) -> None:
        """
        Send C{basic.publish} with its content.  Equivalent to
        L{send_method} with a C{Basic.Publish}, with less overhead.
        """
        method = self._publish_class(
            exchange=exchange, routing_key=routing_key, mandatory=mandatory, immediate=immediate
        )
        if properties is None:
            properties = self.no_properties
        self.send_method(channel, method, properties, body)

    def ack(self, channel: int, delivery_tag: int, multiple: bool = False) -> None:
        """
        Send C{basic.ack}.  Equivalent to L{send_method} with a
        C{Basic.Ack}, with less overhead: on an open channel with nothing
        queued its frame is packed directly, with no method object.

        @raise LocalProtocolError: as L{send_method}, or the spec has no
            C{basic.ack}.
        """
        ids = self._ack_ids
        if (
            ids is not None
            and self.state is _CONN_OPEN
            and type(delivery_tag) is int
            and 0 <= delivery_tag <= _MAX_LONGLONG
            and (multiple is False or multiple is True)
        ):
            ch = self._channels.get(channel)
            if ch is not None and ch.state is _CH_OPEN and not ch.pending:
                self._outbox.append(
                    _ACK_FRAME.pack(
                        FRAME_METHOD,
                        channel,
                        13,
                        ids[0],
                        ids[1],
                        delivery_tag,
                        multiple,
                        _frames.FRAME_END,
                    )
                )
                return
        fields = {"delivery_tag": delivery_tag, "multiple": multiple}
        self.send_method(channel, self.methods.make("basic.ack", (), fields))

    @property
    def _publish_class(self) -> type[Method]:
        return self.methods["basic.publish"]

    # -- internals -----------------------------------------------------------

    def _build_client_properties(
        self, extra: Mapping[str, Any] | None, connection_name: str | None
    ) -> dict[str, Any]:
        props: dict[str, Any] = {
            "product": PRODUCT,
            "version": VERSION,
            "platform": f"{platform.python_implementation()} {platform.python_version()}",
            "information": "https://pypi.org/project/txamqp-next/",
            "capabilities": capabilities(self.spec),
        }
        if connection_name is not None:
            props["connection_name"] = connection_name
        if extra:
            props.update(extra)
        return props

    def _closed(self) -> bool:
        return self.state is _CONN_CLOSED

    def _awaiting_version_reply(self) -> bool:
        """
        A broker that does not speak our version answers with the protocol
        header it does speak, then hangs up.  Recognise that instead of
        reading C{"A"} as a frame type.
        """
        head = self._reader.peek(8)
        if not b"AMQP".startswith(head[:4]):
            return False
        if len(head) < 8:
            return True
        raise RemoteProtocolError(
            FRAME_ERROR,
            f"the broker does not speak AMQP {self.spec.version_name}; it answered with "
            f"protocol header {head!r}",
        )

    def _fail(self, error: ProtocolError) -> None:
        """
        Close the connection after a protocol fault: queue a
        C{connection.close} with the fault's code, and stop.
        """
        self.error = error
        if self.state not in (_CONN_AWAIT_START, _CONN_CLOSED):
            close = self.methods["connection.close"](
                reply_code=error.reply_code, reply_text=truncate_shortstr(error.reply_text)
            )
            self._outbox.append(_frames.method_frame(0, close.encode()))
        self.state = _CONN_CLOSED
        self._drop_channels()

    def _drop_channels(self) -> None:
        self._channels.clear()
        self._awaiting0 = None
        self._pending0.clear()

    def _free_channel(self) -> int:
        return self.free_channel()

    def free_channel(self, exclude: Container[int] = ()) -> int:
        """
        The lowest channel id that is not in use (nor in C{exclude}).

        @raise NoFreeChannel: every id up to C{channel_max} is taken.
        """
        limit = self.channel_max or 65535
        for candidate in range(1, limit + 1):
            if candidate not in self._channels and candidate not in exclude:
                return candidate
        raise NoFreeChannel(COMMAND_INVALID, f"all {limit} channels are in use")

    def _connection_input(self, name: str, local: bool) -> None:
        new = _CONNECTION_TRANSITIONS.get((self.state, name))
        if new is None:
            text = f"{name} is not allowed while the connection is {self.state.value}"
            if local:
                raise LocalProtocolError(COMMAND_INVALID, text)
            raise RemoteProtocolError(COMMAND_INVALID, text)
        self.state = new

    def _channel_input(self, ch: _Channel, name: str, local: bool) -> None:
        new = _CHANNEL_TRANSITIONS.get((ch.state, name))
        if new is None:
            text = f"{name} is not allowed while channel {ch.id} is {ch.state.value}"
            if ch.error is not None and local:
                text += f" (closed after {ch.error})"
            if local:
                raise LocalProtocolError(COMMAND_INVALID, text, ch.id)
            raise RemoteProtocolError(CHANNEL_ERROR, text, ch.id)
        ch.state = new

    def _send_frame(self, channel: int, method: Method) -> None:
        self._outbox.append(_frames.method_frame(channel, method.encode()))

    def _encode(
        self, channel: int, method: Method, properties: Properties | None, body: bytes
    ) -> list[bytes]:
        """
        The frames of a method and its content.  A content method's frame
        is encoded once per method object (methods are immutable), and a
        body that fits one frame, sent with L{no_properties}, gets its
        header and body envelope from one C{struct} call, uncopied.

        @raise LocalProtocolError: a value does not fit its field.
        """
        frame_max = self.frame_max
        if not method.CONTENT:
            frame = method.encode_frame(channel)
            if frame_max and len(frame) > frame_max:
                raise _too_large(method, channel, "its frame", len(frame), frame_max)
            return [frame]
        assert properties is not None
        if type(body) is not bytes and not isinstance(body, (bytearray, memoryview)):
            raise TypeError(
                f"a message body is bytes, bytearray or memoryview, not {type(body).__name__}"
            )
        cached = self._method_frames.get(id(method))
        if cached is not None and cached[0] is method and cached[1] == channel:
            frame = cached[2]
        else:
            frame = method.encode_frame(channel)
            if frame_max and len(frame) > frame_max:
                raise _too_large(method, channel, "its frame", len(frame), frame_max)
            if len(self._method_frames) >= _METHOD_FRAME_CACHE:
                self._method_frames.clear()
            self._method_frames[id(method)] = (method, channel, frame)
        size = len(body)
        if frame_max and size > frame_max - _frames.FRAME_OVERHEAD:
            # several body frames: one buffer for the whole message
            header = properties.header_frame(channel, size)
            if len(header) > frame_max:
                raise _too_large(method, channel, "its content header", len(header), frame_max)
            return [_frames.joined_frames([frame, header], channel, body, frame_max)]
        if properties is self.no_properties and size:
            bare = _BARE_CONTENT.pack(
                FRAME_HEADER, channel, 14, properties.CLASS_ID, 0, size, 0,
                _frames.FRAME_END, FRAME_BODY, channel, size,
            )  # fmt: skip
            return [frame, bare, body, _END]
        content = properties.content_frames(channel, body, frame_max)
        if frame_max:
            # the header alone, or joined with the one body frame
            header_size = len(content[0])
            if size and len(content) == 1:
                header_size -= size + _frames.FRAME_OVERHEAD
            if header_size > frame_max:
                raise _too_large(method, channel, "its content header", header_size, frame_max)
        return [frame, *content]

    def _transmit(self, ch: _Channel, method: Method, frames: list[bytes] | None) -> None:
        if frames is None:
            self._outbox.append(method.encode_frame(ch.id))
        else:
            self._outbox.extend(frames)
        if method.expects_reply:
            ch.awaiting = method

    def _flush_pending(self, ch: _Channel) -> None:
        while ch.pending and ch.awaiting is None:
            method, frames = ch.pending.popleft()
            self._transmit(ch, method, frames)

    def _frame_channel(
        self, frame_type: int, channel: int, payload: bytes, events: list[Event]
    ) -> _Channel | None:
        """
        What L{receive_data} does not check for a frame on a channel in use
        of an open connection: the channel a channel frame goes to, or
        C{None} for a frame handled here (on channel 0) or discarded (on a
        closing connection).

        @raise RemoteProtocolError: a frame for a channel not in use, or a
            frame the connection's state refuses.
        """
        if channel:
            if self.state is not _CONN_OPEN:
                # (open, channel-frame) leaves the state alone: the table is
                # consulted for every other state
                self._connection_input("channel-frame", local=False)
                if self.state is _CONN_CLOSING:
                    return None  # discarded until close-ok
            ch = self._channels.get(channel)
            if ch is None or ch.state is _CH_CLOSED:
                raise RemoteProtocolError(
                    CHANNEL_ERROR, f"frame for channel {channel}, which is not open", channel
                )
            return ch
        if frame_type == FRAME_HEARTBEAT:
            return None
        if frame_type != FRAME_METHOD:
            raise RemoteProtocolError(UNEXPECTED_FRAME, "content frame on channel 0")
        self._handle_connection_method(self._decode(payload), events)
        return None

    def _handle_connection_method(self, method: Method, events: list[Event]) -> None:
        if not method.CONNECTION_CLASS:
            raise RemoteProtocolError(COMMAND_INVALID, f"{method.NAME} on channel 0")
        self._check_chassis(method, 0)
        name = method.NAME
        before = self.state
        self._connection_input(name, local=False)
        if before is _CONN_CLOSING and name not in (
            "connection.close",
            "connection.close-ok",
        ):
            return
        if name == "connection.start":
            # told before the answer is: a client without credentials may
            # be given them when it hears of the start
            events.append(MethodReceived(0, method))
            self._on_start(method, events)
        elif name == "connection.secure":
            assert self.credentials is not None
            self._secure_rounds += 1
            if self._secure_rounds > MAX_SECURE_ROUNDS:
                self.state = _CONN_CLOSED
                self._drop_channels()
                events.append(
                    ConnectionClosed(
                        AuthenticationError(
                            reply_text=f"the broker sent connection.secure {self._secure_rounds} "
                            f"times for {self.credentials.mechanism}; the client gave up"
                        )
                    )
                )
                return
            self._send_frame(
                0, self.methods["connection.secure-ok"](response=self.credentials.response())
            )
        elif name == "connection.tune":
            self._on_tune(method)
            events.append(MethodReceived(0, method))
        elif name == "connection.open-ok":
            events.append(
                ConnectionOpened(
                    self.server_properties, self.channel_max, self.frame_max, self.heartbeat
                )
            )
        elif name == "connection.close":
            self._send_frame(0, self._close_ok())
            args = dict(method.items())
            # a close answering start-ok is a refusal of our credentials
            error_type = AuthenticationError if before is _CONN_AWAIT_TUNE else connection_error_for
            error = error_type(
                args["reply_code"],
                args["reply_text"],
                args["class_id"],
                args["method_id"],
                method=method,
            )
            self.error = error
            self._drop_channels()
            events.append(ConnectionClosed(error))
        elif name == "connection.close-ok":
            self._drop_channels()
            events.append(ConnectionClosed(None))
        elif self._awaiting0 is not None and type(method) in self._awaiting0.RESPONSES:
            self._awaiting0 = None
            events.append(reply_received(0, method, None, b""))
            while self._pending0 and self._awaiting0 is None:
                queued = self._pending0.popleft()
                self._outbox.append(queued.encode_frame(0))
                if queued.expects_reply:
                    self._awaiting0 = queued
        elif method.IS_REPLY:
            raise RemoteProtocolError(
                UNEXPECTED_FRAME, f"{method.NAME} arrived while expecting no reply"
            )
        else:
            events.append(MethodReceived(0, method))

    def _on_start(self, start: Method, events: list[Event]) -> None:
        self._start = start
        self.server_properties = getattr(start, "server_properties", {})
        if self.credentials is not None:
            self._connection_input("authenticate", local=False)
            self._send_start_ok(events)

    def _send_start_ok(self, events: list[Event]) -> None:
        assert self._start is not None and self.credentials is not None
        offered = getattr(self._start, "mechanisms", b"")
        offered_text = offered.decode("ascii", "replace") if isinstance(offered, bytes) else offered
        mechanism = self.credentials.mechanism
        if mechanism not in offered_text.split():
            self.state = _CONN_CLOSED
            events.append(
                ConnectionClosed(
                    AuthenticationError(
                        reply_text=f"the broker offers auth mechanisms {offered_text!r}, "
                        f"not {mechanism}"
                    )
                )
            )
            return
        start_ok = self.methods["connection.start-ok"](
            client_properties=self._client_properties,
            mechanism=mechanism,
            response=self.credentials.response(),
            locale=self.params.locale,
        )
        self._send_frame(0, start_ok)

    def _on_tune(self, tune: Method) -> None:
        channel_max, frame_max, heartbeat = self._wanted
        proposed = getattr(tune, "frame_max", 0)
        minimum = self.spec.constant("frame-min-size", FRAME_MIN_SIZE)
        if 0 < proposed < minimum:
            raise RemoteProtocolError(
                SYNTAX_ERROR,
                f"connection.tune proposes frame_max {proposed}, below the spec's minimum "
                f"of {minimum}",
            )
        self.channel_max = negotiate(channel_max, getattr(tune, "channel_max", 0)) or 65535
        self.frame_max = negotiate(frame_max, proposed)
        self.heartbeat = negotiate(heartbeat, getattr(tune, "heartbeat", 0))
        self._reader.frame_max = self.frame_max or self.max_message_size + _frames.FRAME_OVERHEAD
        self._send_frame(
            0,
            self.methods["connection.tune-ok"](
                channel_max=self.channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat
            ),
        )
        self._send_frame(0, self.methods["connection.open"](virtual_host=self.vhost))

    def _handle_channel_method(self, ch: _Channel, method: Method, events: list[Event]) -> None:
        if method.CONNECTION_CLASS:
            raise RemoteProtocolError(
                COMMAND_INVALID, f"{method.NAME} (a connection method) arrived", ch.id
            )
        if not method.CLIENT_RECEIVES:
            self._check_chassis(method, ch.id)
        if ch.content_method is not None:
            raise RemoteProtocolError(
                UNEXPECTED_FRAME,
                f"{method.NAME} arrived while the content of {ch.content_method.NAME} "
                "was incomplete",
                ch.id,
            )
        name = method.NAME
        if name in _CHANNEL_METHOD_INPUTS:
            self._channel_input(ch, name, local=False)
        else:
            if ch.state is not _CH_OPEN:
                # (open, receive) leaves the state alone: the table is
                # consulted for every other state
                self._channel_input(ch, "receive", local=False)
            if ch.state is _CH_OPEN:
                # the common case (deliveries, replies): nothing below but
                # the reply check applies
                reply = (ch.awaiting is not None or method.IS_REPLY) and self._check_reply(
                    ch, method
                )
                if method.CONTENT:
                    ch.content_method = method
                    ch.content_reply = reply
                    return
                if reply:
                    events.append(reply_received(ch.id, method, None, b""))
                else:
                    events.append(method_received(ch.id, method))
                if ch.pending:
                    self._flush_pending(ch)
                return
        if ch.state is _CH_CLOSING and name not in ("channel.close-ok", "channel.close"):
            return  # discarded while closing
        if name == "channel.close":
            self._send_frame(ch.id, self._channel_close_ok())
            args = dict(method.items())
            error = channel_error_for(
                args["reply_code"],
                args["reply_text"],
                args["class_id"],
                args["method_id"],
                method=method,
            )
            if ch.state is _CH_CLOSING:
                # our close crossed the broker's: the channel is closed for
                # the application now, but its id stays taken until the
                # broker's close-ok for our close has come
                if ch.error is None:
                    ch.error = error
                    events.append(ChannelClosed(ch.id, error))
                return
            self._close_channel(ch, error, events)
            return
        if name == "channel.close-ok":
            # ChannelClosed (with no error) is the answer to our close; after
            # a close for a fault, ChannelClosed went out with the fault
            self._close_channel(ch, ch.error, events, notify=ch.error is None)
            return
        if name == "channel.flow":
            flow_ok = self.methods["channel.flow-ok"](active=getattr(method, "active", True))
            self._outbox.append(_frames.method_frame(ch.id, flow_ok.encode()))
        reply = self._check_reply(ch, method)
        if method.CONTENT:
            ch.content_method = method
            ch.content_reply = reply
            return
        if reply:
            events.append(reply_received(ch.id, method, None, b""))
        else:
            events.append(MethodReceived(ch.id, method))
        self._flush_pending(ch)

    @staticmethod
    def _check_chassis(method: Method, channel: int) -> None:
        """
        Refuse a method the spec says only a client sends (C{queue.declare}
        from the broker).
        """
        if not method.CLIENT_RECEIVES:
            raise RemoteProtocolError(
                COMMAND_INVALID, f"{method.NAME} is sent by clients, not brokers", channel
            )

    def _check_reply(self, ch: _Channel, method: Method) -> bool:
        """
        Match a received method against the outstanding synchronous call.

        @return: whether it is that call's reply.
        @raise RemoteProtocolError: it is a reply to some call, but not to
            the one outstanding.
        """
        awaiting = ch.awaiting
        if awaiting is not None and type(method) in awaiting.RESPONSES:
            ch.awaiting = None
            return True
        if method.IS_REPLY:
            expected = awaiting.NAME if awaiting is not None else "no reply"
            raise RemoteProtocolError(
                UNEXPECTED_FRAME, f"{method.NAME} arrived while expecting {expected}", ch.id
            )
        return False

    def _close_channel(
        self,
        ch: _Channel,
        error: Any,
        events: list[Event],
        notify: bool = True,
    ) -> None:
        ch.state = _CH_CLOSED
        del self._channels[ch.id]
        if notify:
            events.append(ChannelClosed(ch.id, error))

    def _fault_channel(self, ch: _Channel, error: ContentTooLarge, events: list[Event]) -> None:
        """
        Close a channel ourselves because of a channel-level fault.
        """
        self._channel_input(ch, "fault", local=False)
        ch.error = error
        ch.pending = None
        ch.awaiting = None
        ch.content_method = None
        ch.content_body = []
        close = self.methods["channel.close"](
            reply_code=error.reply_code,
            reply_text=truncate_shortstr(error.reply_text),
            class_id=error.class_id,
            method_id=error.method_id,
        )
        self._outbox.append(_frames.method_frame(ch.id, close.encode()))
        events.append(ChannelClosed(ch.id, error))

    def _handle_header(self, ch: _Channel, payload: bytes, events: list[Event]) -> None:
        if ch.state is _CH_CLOSING:
            return
        method = ch.content_method
        if method is None or ch.content_properties is not None:
            raise RemoteProtocolError(
                UNEXPECTED_FRAME, "content header without a method that carries content", ch.id
            )
        class_id, size, properties = self._decode_header(payload, ch.id)
        if class_id != method.CLASS_ID:
            raise RemoteProtocolError(
                UNEXPECTED_FRAME,
                f"content header of class {class_id} after {method.NAME}",
                ch.id,
            )
        if size > self.max_message_size:
            error = ContentTooLarge(
                CONTENT_TOO_LARGE,
                f"message of {size} bytes on channel {ch.id} exceeds the "
                f"{self.max_message_size}-byte limit",
                method.CLASS_ID,
                method.METHOD_ID,
            )
            self._fault_channel(ch, error, events)
            return
        ch.content_properties = properties
        ch.content_size = size
        ch.content_received = 0
        if size == 0:
            self._deliver(ch, events)

    def _handle_body(self, ch: _Channel, payload: _frames.BodyPayload, events: list[Event]) -> None:
        if ch.state is _CH_CLOSING:
            return
        if ch.content_properties is None:
            raise RemoteProtocolError(
                UNEXPECTED_FRAME, "content body without a content header", ch.id
            )
        if isinstance(payload, tuple):
            # a frame that straddled received chunks, in pieces
            ch.content_received += sum(map(len, payload))
            ch.content_body.extend(payload)
        else:
            ch.content_received += len(payload)
            ch.content_body.append(payload)
        if ch.content_received > ch.content_size:
            raise RemoteProtocolError(
                UNEXPECTED_FRAME,
                f"content body of {ch.content_received} bytes exceeds the "
                f"{ch.content_size} declared",
                ch.id,
            )
        if ch.content_received == ch.content_size:
            self._deliver(ch, events)

    def _deliver(self, ch: _Channel, events: list[Event]) -> None:
        method = ch.content_method
        properties = ch.content_properties
        assert method is not None and properties is not None
        chunks = ch.content_body
        # the one copy of a body in pieces (views of the received data)
        body = chunks[0] if len(chunks) == 1 and type(chunks[0]) is bytes else b"".join(chunks)
        ch.content_method = None
        ch.content_properties = None
        ch.content_body = []
        if ch.content_reply:
            events.append(reply_received(ch.id, method, properties, body))
        else:
            events.append(content_received(ch.id, method, properties, body))
        if ch.pending:
            self._flush_pending(ch)
