# -*- test-case-name: tests.test_protocol -*-
"""
L{AMQPConnection}: the Twisted protocol that drives the sans-IO AMQP core.

C{dataReceived} feeds the core, routes the events it returns to channels,
and writes what the core has to send.  The connection is a plain
L{Protocol}, so it works with endpoints, C{connectProtocol} and
C{ClientService}; L{txamqp_next.connect} is the usual way to get one.

Channels (L{txamqp_next.channel.Channel}) talk to their connection through
one narrow interface, L{ChannelLink}; nothing here knows of txAMQP, whose
names (C{AMQClient}, the delegate, C{client.queue(tag)}) are built on top
in L{txamqp_next.protocol} and the other compatibility modules.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp_next._connection import ChannelState, Connection, ConnectionState
from txamqp_next._deferred import AsyncioDeferred, fail, succeed
from txamqp_next._events import (
    ChannelClosed,
    ConnectionClosed,
    ConnectionOpened,
    ContentReceived,
    Event,
    MethodReceived,
    ReplyReceived,
)
from txamqp_next._methods import Method, MethodSet, Properties
from txamqp_next._params import ConnectionParameters, Credentials
from txamqp_next._tls import tls_error_for
from txamqp_next.channel import Channel
from txamqp_next.errors import (
    COMMAND_INVALID,
    AuthenticationError,
    HeartbeatTimeout,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from txamqp_next.errors import ConnectionClosed as ConnectionClosedError
from txamqp_next.spec import Spec
from txamqp_next.stats import ChannelStats, ConnectionStats, connection_stats, sum_channels

__all__ = ["AMQPConnection", "ChannelLink"]

# the first bytes of TLS 1.x alert and handshake records
_TLS_RECORDS = (b"\x15\x03", b"\x16\x03")

#: while received frames are handled, the most sends (and body bytes) that
#: wait for one write
_COALESCE_WRITES = 64
_COALESCE_BYTES = 16384

#: the transports whose socket L{AMQPConnection._write} may write to at once
#: when their buffer is empty: Twisted's plain TCP connections, whose
#: C{writeSomeData} and buffer attributes it uses
_DIRECT_SEND_TRANSPORTS: frozenset[type] = frozenset({tcp.Client, tcp.Server})
#: what such a transport reads at most per C{recv}, and buffers before it
#: pauses its producer (Twisted's default is 64 KiB)
_TCP_BUFFER_SIZE = 262144
#: the most such a transport hands its socket per C{send} (Twisted's default
#: is 128 KiB, a turn of the reactor for each)
_TCP_SEND_LIMIT = 1 << 20
#: larger writes go to the transport whole: what a socket does not take at
#: once would have to be copied to hand the rest over
_DIRECT_SEND_MAX = 65536


def _peer_name(transport: object) -> str:
    """
    C{host:port} of the transport's peer, or what it says of itself.
    """
    peer = transport.getPeer()  # type: ignore[attr-defined]
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None else str(peer)


def _text(value: object) -> str:
    """
    A server property as text (the broker sends long strings as bytes).
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


class ChannelLink:
    """
    What a L{Channel} may ask of its connection, and nothing more.

    @ivar methods: the method classes of the connection's spec.
    @ivar clock: the connection's clock.
    @ivar close_timeout: how long a close waits for the broker's close-ok.
    """

    __slots__ = (
        "_connection",
        "clock",
        "close_timeout",
        "flush",
        "methods",
        "no_properties",
        "send_ack",
        "send_method",
    )

    def __init__(self, connection: AMQPConnection) -> None:
        self._connection = connection
        core = connection.core
        self.methods: MethodSet = core.methods
        self.clock: IReactorTime = connection.clock
        self.close_timeout: float = connection.params.close_timeout
        #: the empty C{basic} properties, the cheapest to send
        self.no_properties: Properties = core.no_properties
        #: hand a method to the core: C{send_method(channel, method,
        #: properties, body)}, raising L{LocalProtocolError} if refused
        self.send_method = core.send_method
        #: hand a C{basic.ack} to the core: C{send_ack(channel,
        #: delivery_tag, multiple)}, raising as C{send_method}
        self.send_ack = core.ack
        #: write what the core queued: C{flush(size=..., publish=...)} (see
        #: L{AMQPConnection._flush}); the publish path calls these two
        #: itself rather than L{send}
        self.flush = connection._flush

    @property
    def paused(self) -> bool:
        """
        Whether publishing is paused (see L{AMQPConnection.publishing_paused}).
        """
        return self._connection._publishing_paused

    def send(
        self,
        channel: int,
        method: Method,
        properties: Properties | None = None,
        body: bytes = b"",
        publish: bool = False,
    ) -> None:
        """
        Hand a method (and its content) to the core and write it.

        @param publish: a publish made by the application (written with the
            other publishes of the reactor turn).
        @raise LocalProtocolError: the core refused it; nothing was sent.
        """
        self.send_method(channel, method, properties, body)
        if publish:
            self.flush(size=len(body), publish=True)
        else:
            self.flush()

    def refused(self, error: LocalProtocolError) -> BaseException:
        """
        Why the core refused a send: the connection's error once it is
        closed by the broker or a fault (the close may still be on its way
        to the channels, while the frames that came with it are handled),
        else C{error}.
        """
        connection = self._connection
        return connection.closed or connection.core.error or error

    def hold(self, size: int, force: bool = False) -> bool:
        """
        Count C{size} body bytes as held while publishing is paused.

        @param force: count them even past the limit.
        @return: C{False} (counting nothing) when that would pass the
            connection's C{max_held_bytes}.
        """
        connection = self._connection
        held = connection._held_bytes + size
        if held > connection.params.max_held_bytes and not force:
            return False
        connection._held_bytes = held
        return True

    def release(self, size: int) -> None:
        """
        Held body bytes were sent or failed.
        """
        self._connection._held_bytes -= size

    @property
    def held_bytes(self) -> int:
        """
        The body bytes held over all channels.
        """
        return self._connection._held_bytes

    @property
    def max_held_bytes(self) -> int:
        return self._connection.params.max_held_bytes

    def call_hook(self, hook: Callable[..., object], *args: Any) -> None:
        """
        Call application code; its failure is logged and never breaks the
        handling of the frames that follow.
        """
        self._connection._call_hook(hook, *args)

    def state(self, channel: int) -> ChannelState:
        """
        The core's state of a channel.
        """
        return self._connection.core.channel_state(channel)

    def forget(self, channel: Channel) -> None:
        """
        The channel closed: drop it from the connection's registry, and add
        its counters to the connection's.
        """
        connection = self._connection
        if connection._channels.get(channel.id) is channel:
            del connection._channels[channel.id]
        connection._closed_channels = sum_channels((connection._closed_channels, channel.stats()))

    def count_opened(self) -> None:
        """
        The broker opened a channel (C{channel.open-ok}).
        """
        self._connection._channels_opened += 1


@implementer(IPushProducer)
class AMQPConnection(Protocol):
    """
    An AMQP 0-9-1 connection (0-8 and 0-9 too, with their spec).

    The connection registers itself as the transport's streaming producer:
    when the transport's write buffer passes its high-water mark it pauses
    the connection, which then holds publishes (their L{Deferred}s stay
    pending) until the buffer drains.  Applications see this through
    L{publishing_paused}, L{when_writable} and L{register_producer}.

    @param params: where and how to connect (see L{ConnectionParameters});
        the defaults log in as guest.
    @param clock: the reactor (for timers); the global one when omitted.
    @param overrides: parameters to change from C{params}, by name
        (C{AMQPConnection(credentials=..., heartbeat=30)}).

    @ivar params: the parameters in force.
    @ivar spec: the loaded L{Spec}.
    @ivar core: the sans-IO L{Connection}.
    @ivar server_properties: what the broker said of itself.
    @ivar closed: the reason the connection ended, or C{None} while it is up.
    @ivar blocked: why the broker blocked publishing, or C{None}.
    """

    log = Logger()

    def __init__(
        self,
        params: ConnectionParameters | None = None,
        *,
        clock: IReactorTime | None = None,
        **overrides: Any,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.clock: IReactorTime = clock
        params = params if params is not None else ConnectionParameters()
        if overrides:
            params = dataclasses.replace(params, **overrides)
        self.params = params
        self.core = Connection(params)
        self.spec: Spec = self.core.spec
        self.vhost = params.vhost
        self.server_properties: Mapping[str, Any] = {}
        self.closed: BaseException | None = None
        self.blocked: str | None = None
        self._channels: dict[int, Channel] = {}
        self._link = ChannelLink(self)
        self._held_bytes = 0
        self._open_waiters: list[Deferred[Any]] = []
        self._lost_waiters: list[Deferred[None]] = []
        self._close_call: IDelayedCall | None = None
        self._heartbeat: LoopingCall | None = None
        self._opened = False
        self._lost = False
        self._blocked_handlers: list[Callable[[bool, str], object]] = []
        self._channel0_waiters: list[Deferred[Any]] = []
        # backpressure: the transport paused us; publishing is paused (the
        # transport paused us or the broker blocked us); the application's
        # producers, and whether we paused them
        self._write_paused = False
        self._publishing_paused = False
        self._producers: list[IPushProducer] = []
        self._producers_paused = False
        self._writable_waiters: list[Deferred[None]] = []
        # True while received events are handled, and what waits for the
        # write that follows; see _flush
        self._dispatching = False
        self._waiting_writes = 0
        self._waiting_bytes = 0
        self._turn_flush: IDelayedCall | None = None
        # whether _flush may send on the socket itself (see connectionMade)
        self._send_direct = False
        # counters (see stats): those of the channels closed so far, and the
        # connection's own; when the broker's current block began
        self._closed_channels = ChannelStats()
        self._channels_opened = 0
        self._blocked_since: float | None = None
        self._blocked_seconds = 0.0
        self._heartbeat_timeouts = 0
        # whether the connection ends because the application closed it
        self._closing_by_client = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} vhost={self.vhost!r} {self.core.state.value}>"

    @property
    def close_timeout(self) -> float:
        """
        How long L{close} waits for the broker's C{close-ok}.
        """
        return self.params.close_timeout

    @property
    def max_held_bytes(self) -> int:
        """
        The most body bytes held back over all channels while publishing is
        paused; a publish past it fails with L{errors.PublishBufferFull}.
        """
        return self.params.max_held_bytes

    # -- Twisted hooks -------------------------------------------------------

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.log.info(
            "connected to {peer}; opening virtual host {vhost}",
            amqp_event="connection.connecting",
            peer=_peer_name(self.transport),
            vhost=self.vhost,
            connection_name=self.params.connection_name,
        )
        self._send_direct = type(self.transport) in _DIRECT_SEND_TRANSPORTS
        if self._send_direct:
            self.transport.bufferSize = _TCP_BUFFER_SIZE  # type: ignore[attr-defined]
            self.transport.SEND_LIMIT = _TCP_SEND_LIMIT  # type: ignore[attr-defined]
        try:
            self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError) as e:
            # a transport without producers, or with one already registered
            self.log.warn("publishing ignores the transport's buffer: {error}", error=e)
        # without it, a small frame written while an earlier one is not yet
        # acknowledged (a basic.cancel after the last acks) waits for the
        # broker's delayed ACK, some 40 ms on Linux (Nagle's algorithm); a
        # TLS transport passes the call on to its TCP one
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except (OSError, NotImplementedError) as e:
                # a transport that has the call but not the option (or a
                # socket already gone, which connectionLost will report)
                self.log.info("could not turn Nagle's algorithm off: {error}", error=e)
        self._flush()

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.core.receive_data(data)
        except RemoteProtocolError as e:
            if not self._opened and data[:2] in _TLS_RECORDS:
                # a TLS server's alert (or handshake) record: no frame type
                # is 0x15 or 0x16
                e = RemoteProtocolError(
                    e.reply_code,
                    "the server answered with TLS, not AMQP: is this its TLS port? use amqps://",
                )
            self.log.error("the broker broke the protocol: {error}", error=e)
            self._handle_events([], e)
            return
        self._handle_events(events, None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        if self._close_call is not None and self._close_call.active():
            self._close_call.cancel()
        if self._turn_flush is not None and self._turn_flush.active():
            self._turn_flush.cancel()
        self._turn_flush = None
        self._lost = True
        if self.closed is None:
            self.closed = self._lost_reason(reason)
        self._end_block()
        self._log_ended(self.closed)
        self._fail_everything(self.closed)
        self._connection_ended(self.closed, reason)
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)
        producers, self._producers = self._producers, []
        for producer in producers:
            self._call_hook(producer.stopProducing)

    def _log_ended(self, reason: BaseException) -> None:
        """
        Log the end of the connection: C{connection.closed} when the
        application closed it, else C{connection.lost}.
        """
        code = getattr(reason, "reply_code", None)
        text = getattr(reason, "reply_text", str(reason))
        if self._closing_by_client:
            self.log.info(
                "connection to virtual host {vhost} closed",
                amqp_event="connection.closed",
                vhost=self.vhost,
                reply_code=code,
                reply_text=text,
            )
        else:
            self.log.warn(
                "connection to virtual host {vhost} lost: {error}",
                amqp_event="connection.lost",
                vhost=self.vhost,
                reply_code=code,
                reply_text=text,
                error=reason,
                opened=self._opened,
            )

    def _lost_reason(self, reason: Failure) -> BaseException:
        tls_error = tls_error_for(reason.value) if reason.value is not None else None
        if tls_error is not None:
            return tls_error
        text = f"connection lost: {reason.getErrorMessage()}"
        if not self._opened and self.core.state is ConnectionState.AWAIT_TUNE:
            return AuthenticationError(
                reply_text="the broker closed the connection after start-ok: "
                "it probably refused the credentials",
                reason=reason,
            )
        return ConnectionClosedError(reply_text=text, reason=reason)

    # -- backpressure (IPushProducer, for the transport) ---------------------

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full: hold publishes until
        L{resumeProducing}.
        """
        self._write_paused = True
        self._update_paused()

    def resumeProducing(self) -> None:
        """
        The transport's write buffer drained: send the held publishes, in
        order, then wake the application's producers.
        """
        self._write_paused = False
        self._update_paused()

    def stopProducing(self) -> None:
        """
        The transport is going away; L{connectionLost} follows.
        """
        self._write_paused = True
        self._update_paused()

    @property
    def publishing_paused(self) -> bool:
        """
        Whether publishes are held right now: the transport's write buffer
        is over its high-water mark or the broker blocked the connection
        (C{connection.blocked}).  A channel whose flow the broker stopped
        also holds its publishes; see C{Channel.flow_active}.
        """
        return self._publishing_paused

    def when_writable(self) -> Deferred[None]:
        """
        Wait until publishing is not paused.

        @return: a L{Deferred} firing with C{None} at once if publishing is
            not paused, else once it resumes (after the held publishes went
            out); it fails with the connection's error if the connection
            ends first.
        """
        if self.closed is not None:
            return fail(self.closed)
        if not self._publishing_paused:
            return succeed(None)
        d: Deferred[None] = AsyncioDeferred()
        self._writable_waiters.append(d)
        return d

    def register_producer(self, producer: IPushProducer) -> None:
        """
        Pause C{producer} (C{pauseProducing}) whenever publishing is paused
        and resume it (C{resumeProducing}) when publishing resumes, so an
        application that publishes as fast as it can never grows memory
        without bound.  When the connection ends, C{stopProducing} is
        called and the producer forgotten.

        @param producer: an L{IPushProducer}; it is paused at once if
            publishing is paused now.
        """
        if producer in self._producers:
            return
        self._producers.append(producer)
        if self._producers_paused:
            producer.pauseProducing()

    def unregister_producer(self, producer: IPushProducer) -> None:
        """
        Forget a producer given to L{register_producer}.  It is not resumed.
        """
        if producer in self._producers:
            self._producers.remove(producer)

    def _update_paused(self) -> None:
        """
        Recompute whether publishing is paused and tell the channels and the
        application's producers when that changes.
        """
        paused = self._write_paused or self.blocked is not None
        if paused == self._publishing_paused:
            return
        self._publishing_paused = paused
        if paused:
            for ch in self._channels.values():
                ch._pause_publishing()
            if not self._producers_paused:
                self._producers_paused = True
                for producer in list(self._producers):
                    self._call_hook(producer.pauseProducing)
            return
        for ch in list(self._channels.values()):
            ch._resume_publishing()
            if self._publishing_paused:
                return  # releasing filled the buffer again
        # a waiter that publishes may fill the buffer again: the rest wait
        # for the next drain
        while self._writable_waiters and not self._publishing_paused:
            self._writable_waiters.pop(0).callback(None)
        if self._producers_paused and not self._publishing_paused:
            self._producers_paused = False
            for producer in list(self._producers):
                self._call_hook(producer.resumeProducing)

    # -- the handshake -------------------------------------------------------

    def login(self, credentials: Credentials) -> Deferred[Any]:
        """
        Log in and open the virtual host, for a connection made without
        credentials (L{txamqp_next.connect} passes them for you).

        @return: a L{Deferred} firing with this connection once it is open,
            or failing with L{errors.AuthenticationError},
            L{errors.NotAllowed} (a missing vhost), ...
        """
        try:
            events = self.core.authenticate(credentials)
        except LocalProtocolError as e:
            return fail(e)
        d = self.when_open()
        self._handle_events(events, None)
        return d

    def when_open(self) -> Deferred[Any]:
        """
        @return: a L{Deferred} firing with this connection once the handshake
            is done (at once if it is), or failing with why it never will be.
        """
        if self.closed is not None:
            return fail(self.closed)
        if self._opened:
            return succeed(self)
        d: Deferred[Any] = AsyncioDeferred()
        self._open_waiters.append(d)
        return d

    def when_closed(self) -> Deferred[None]:
        """
        @return: a L{Deferred} firing with C{None} once the transport is gone.
        """
        if self._lost:
            return succeed(None)
        d: Deferred[None] = AsyncioDeferred()
        self._lost_waiters.append(d)
        return d

    # -- channels ------------------------------------------------------------

    def open_channel(self, id: int | None = None) -> Deferred[Channel]:
        """
        Open a new channel (C{channel.open}).

        @param id: the channel id; the lowest free one when omitted.
        @return: a L{Deferred} firing with the open L{Channel}, or failing
            with L{LocalProtocolError} (the id is in use; its subclass
            L{NoFreeChannel<txamqp_next.errors.NoFreeChannel>} when every
            id is taken) or the connection's error.
        """
        if self.closed is not None:
            return fail(self.closed)
        try:
            ch = self.new_channel(id)
        except LocalProtocolError as e:
            return fail(e)
        return ch.channel_open()

    def new_channel(self, id: int | None = None) -> Channel:
        """
        A L{Channel} object for a free id, not opened yet (call its
        C{channel_open}).

        @param id: the channel id; the lowest free one when omitted.
        @raise LocalProtocolError: the id is in use or out of range.
        @raise txamqp_next.errors.NoFreeChannel: every id is taken.
        @raise Exception: the connection's error, when it has ended.
        """
        if self.closed is not None:
            raise self.closed
        if id is None:
            id = self.core.free_channel(exclude=self._channels)
        elif id in self._channels:
            raise LocalProtocolError(COMMAND_INVALID, f"channel {id} is in use", id)
        ch = Channel(self._link, id, self)
        self._channels[id] = ch
        return ch

    # -- closing -------------------------------------------------------------

    def close(self, reason: object = None, within: float = 0) -> Deferred[None]:
        """
        Close the connection: send C{connection.close}, wait for
        C{close-ok} (at most C{within} seconds, or C{close_timeout} when
        C{within} is 0), then drop the transport.

        @param reason: the close's reply text.
        @return: a L{Deferred} firing with C{None} once the transport is gone.
        """
        d = self.when_closed()
        if self._lost or self.transport is None:
            return d
        if self.core.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return d
        reply_text = str(reason) if reason else ""
        self._client_closing(reply_text)
        self.core.close(reply_text=reply_text)
        self._flush(now=True)
        if not self._core_closing():
            self.closed = ConnectionClosedError(reply_text="closed by the client")
            self._lose_transport()
            return d
        timeout = within or self.params.close_timeout
        self._close_call = self.clock.callLater(timeout, self._close_timed_out)
        return d

    def _client_closing(self, reply_text: str) -> None:
        """
        The application is closing the connection: log it, and count the
        end as no loss.
        """
        self._closing_by_client = True
        self.log.info(
            "closing the connection to virtual host {vhost}",
            amqp_event="connection.closing",
            vhost=self.vhost,
            initiator="client",
            reply_code=200,
            reply_text=reply_text,
        )

    def _core_closing(self) -> bool:
        return self.core.state is ConnectionState.CLOSING

    def _close_timed_out(self) -> None:
        self.log.warn("no close-ok from the broker; dropping the connection")
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- plumbing ------------------------------------------------------------

    def _flush(self, now: bool = False, size: int = 0, publish: bool = False) -> None:
        """
        Hand what the core has queued to the transport, or let it wait for
        a later write that takes it along:

          - while received events are being handled, the frames that
            application code sends from its callbacks (acks, replies, the
            next publishes) wait for the one write that follows the batch;
          - a publish made outside that, after an earlier one in the same
            reactor turn was written, waits for the end of the turn (a
            C{callLater(0)}), or for the next write of anything else.

        Either way no more than L{_COALESCE_WRITES} sends or
        L{_COALESCE_BYTES} of bodies wait, so a publisher meets the
        transport's backpressure within a few kilobytes, and the data
        reaches the socket in the same reactor turn as before: Twisted
        writes to the socket only when the reactor next runs.

        @param now: write even while handling events (before the transport
            is closed).
        @param size: the body bytes just queued (publishes).
        @param publish: the send is a publish made by the application.
        """
        if not now:
            writes = self._waiting_writes + 1
            waiting = self._waiting_bytes + size
            if writes < _COALESCE_WRITES and waiting < _COALESCE_BYTES:
                if self._dispatching:
                    self._waiting_writes, self._waiting_bytes = writes, waiting
                    return
                if publish:
                    if self._turn_flush is not None:
                        self._waiting_writes, self._waiting_bytes = writes, waiting
                        return
                    self._turn_flush = self.clock.callLater(0, self._end_turn)
        self._waiting_writes = self._waiting_bytes = 0
        if self.transport is None:
            # not connected yet: the core keeps it for connectionMade
            return
        chunks = self.core.chunks_to_send()
        if chunks:
            # one string: Twisted checks every piece it is given, and joins
            # them before sending anyway
            self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _write(self, data: bytes) -> None:
        """
        Give C{data} to the transport.  A plain TCP transport with nothing
        in its buffer gets up to L{_DIRECT_SEND_MAX} sent on its socket at
        once, rather than in the reactor's next turn, which would cost two
        C{epoll_ctl} calls, an C{epoll_wait} and a turn of the loop per
        write; what the socket does not take (a full buffer, an error the
        transport then meets in its own C{doWrite}) goes to the transport.
        """
        transport = self.transport
        assert transport is not None
        if (
            self._send_direct
            and len(data) <= _DIRECT_SEND_MAX
            and not transport.dataBuffer  # type: ignore[attr-defined]
            and not transport._tempDataLen  # type: ignore[attr-defined]
            and transport.connected  # type: ignore[attr-defined]
            and not transport.disconnecting  # type: ignore[attr-defined]
            and not transport._writeDisconnecting  # type: ignore[attr-defined]
            and not transport.TLS  # type: ignore[attr-defined]
        ):
            sent = transport.writeSomeData(data)  # type: ignore[attr-defined]
            if isinstance(sent, int) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
        transport.write(data)

    def _end_turn(self) -> None:
        """
        The reactor turn in which publishes were written is over: write the
        ones that waited.
        """
        self._turn_flush = None
        if self._waiting_writes:
            self._flush(now=True)

    def _handle_events(self, events: list[Event], error: ProtocolError | None) -> None:
        if self._dispatching:
            # re-entered from a callback (login, say): the outer call flushes
            for event in events:
                self._handle(event)
        else:
            self._dispatching = True
            try:
                for event in events:
                    self._handle(event)
            finally:
                self._dispatching = False
        self._flush()
        if error is not None:
            self.closed = error
            self._fail_everything(error)
            self._lose_transport()

    def _handle(self, event: Event) -> None:
        if isinstance(event, ContentReceived):
            ch = self._channels.get(event.channel)
            if ch is not None:
                ch._content_received(event.method, event.properties, event.body)
        elif isinstance(event, ReplyReceived):
            if event.channel == 0:
                if self._channel0_waiters:
                    self._channel0_waiters.pop(0).callback(event.method)
            else:
                ch = self._channels.get(event.channel)
                if ch is not None:
                    ch._reply_received(event.method, event.properties, event.body)
        elif isinstance(event, MethodReceived):
            if event.channel == 0:
                self._connection_method(event.method)
            else:
                ch = self._channels.get(event.channel)
                if ch is not None:
                    ch._method_received(event.method)
        elif isinstance(event, ChannelClosed):
            ch = self._channels.pop(event.channel, None)
            if ch is not None:
                if event.error is not None:
                    self.log.warn(
                        "channel {channel} closed: {error}",
                        channel=event.channel,
                        error=event.error,
                    )
                    ch._closed(event.error)
                else:
                    # the broker agreed to our close
                    ch._closed(None, self.core.methods["channel.close-ok"]())
        elif isinstance(event, ConnectionOpened):
            self._on_open(event)
        elif isinstance(event, ConnectionClosed):
            self._on_close(event)

    def _on_open(self, event: ConnectionOpened) -> None:
        self._opened = True
        self.server_properties = event.server_properties
        core = self.core
        self.log.info(
            "opened virtual host {vhost} on {product} {version}: channel_max {channel_max}, "
            "frame_max {frame_max}, heartbeat {heartbeat}s",
            amqp_event="connection.opened",
            vhost=self.vhost,
            connection_name=self.params.connection_name,
            product=_text(event.server_properties.get("product")),
            version=_text(event.server_properties.get("version")),
            server_properties=event.server_properties,
            channel_max=core.channel_max,
            frame_max=core.frame_max,
            heartbeat=core.heartbeat,
        )
        if event.heartbeat:
            self._heartbeat = LoopingCall(self._tick)
            self._heartbeat.clock = self.clock
            self._heartbeat.start(event.heartbeat / 2, now=True)
        self._connection_opened(event)
        waiters, self._open_waiters = self._open_waiters, []
        for d in waiters:
            d.callback(self)

    def _on_close(self, event: ConnectionClosed) -> None:
        if event.error is None:
            self.closed = ConnectionClosedError(200, "closed by the client")
        else:
            # the broker's (or a heartbeat's) close wins over ours
            self._closing_by_client = False
            timed_out = isinstance(event.error, HeartbeatTimeout)
            if timed_out:
                self._heartbeat_timeouts += 1
            self.log.warn(
                "the connection is closing: {error}",
                amqp_event="connection.closing",
                vhost=self.vhost,
                initiator="heartbeat" if timed_out else "broker",
                reply_code=getattr(event.error, "reply_code", None),
                reply_text=getattr(event.error, "reply_text", str(event.error)),
                error=event.error,
            )
            self.closed = event.error
        self._fail_everything(self.closed)
        self._flush(now=True)
        if self.transport is None:
            return
        if isinstance(event.error, HeartbeatTimeout):
            # a hung peer may never drain our buffer: do not wait for it
            self.transport.abortConnection()  # type: ignore[attr-defined]
        else:
            self._lose_transport()

    def _lose_transport(self) -> None:
        """
        Close the transport once it has written what it holds.  We stop
        being its producer first: a TLS transport does not shut down while
        a producer is registered, so the close would wait for ever.
        """
        if self.transport is None:
            return
        with contextlib.suppress(AttributeError, RuntimeError):
            self.transport.unregisterProducer()  # type: ignore[attr-defined]
        self.transport.loseConnection()

    def _tick(self) -> None:
        events = self.core.tick(self.clock.seconds())
        self._handle_events(events, None)

    def _fail_everything(self, reason: BaseException) -> None:
        waiters, self._open_waiters = self._open_waiters, []
        for d in waiters:
            d.errback(reason)
        channel0, self._channel0_waiters = self._channel0_waiters, []
        for d0 in channel0:
            d0.errback(reason)
        channels, self._channels = self._channels, {}
        for ch in channels.values():
            ch._closed(reason)
        writable, self._writable_waiters = self._writable_waiters, []
        for dw in writable:
            dw.errback(reason)
        self._connection_failed(reason)

    # -- hooks for subclasses ------------------------------------------------

    def _connection_opened(self, event: ConnectionOpened) -> None:
        """
        The handshake finished; the open waiters fire next.
        """

    def _connection_failed(self, reason: BaseException) -> None:
        """
        The connection ended (or is ending) with C{reason}: everything
        outstanding has just been failed.
        """

    def _connection_ended(self, reason: BaseException, lost: Failure) -> None:
        """
        The transport is gone (C{lost} says how); the close waiters fire next.
        """

    def _connection_method(self, method: Method) -> None:
        """
        A connection method that answers no call arrived: C{start} and
        C{tune} (the core answered them), C{blocked}, C{unblocked}.
        """
        name = method.NAME
        if name == "connection.blocked":
            self.blocked = str(getattr(method, "reason", "")) or "blocked"
            if self._blocked_since is None:
                self._blocked_since = self.clock.seconds()
            self.log.warn(
                "the broker blocked publishing: {reason}",
                amqp_event="connection.blocked",
                vhost=self.vhost,
                reason=self.blocked,
            )
            self._notify_blocked(True)
            self._update_paused()
        elif name == "connection.unblocked":
            self.blocked = None
            seconds = self._end_block()
            self.log.info(
                "the broker unblocked publishing after {blocked_seconds:.3f}s",
                amqp_event="connection.unblocked",
                vhost=self.vhost,
                blocked_seconds=seconds,
            )
            self._notify_blocked(False)
            self._update_paused()
        elif name not in ("connection.start", "connection.tune", "connection.secure"):
            self.log.info("broker says {method}", method=method)

    # -- broker notifications and connection methods -------------------------

    def add_blocked_handler(self, handler: Callable[[bool, str], object]) -> None:
        """
        Call C{handler(blocked, reason)} when the broker blocks publishing
        (C{connection.blocked}, typically on a memory or disk alarm) and
        when it unblocks it (C{reason} is then C{""}).  While blocked,
        publishes wait (their L{Deferred}s stay pending) and go out in order
        on unblock; L{blocked} holds the reason.
        """
        self._blocked_handlers.append(handler)

    def _end_block(self) -> float:
        """
        The broker's block (if any) is over: add its time to the total.

        @return: how long it lasted (0 when there was none).
        """
        since, self._blocked_since = self._blocked_since, None
        if since is None:
            return 0.0
        seconds = self.clock.seconds() - since
        self._blocked_seconds += seconds
        return seconds

    def stats(self) -> ConnectionStats:
        """
        What this connection did so far: the counters of its channels
        (open and closed) summed, and its own (see L{ConnectionStats}).

        @return: a snapshot; it does not change afterwards.
        """
        channels = sum_channels(
            [self._closed_channels, *(ch.stats() for ch in self._channels.values())]
        )
        since = self._blocked_since
        blocked_seconds = self._blocked_seconds
        if since is not None:
            blocked_seconds += self.clock.seconds() - since
        return connection_stats(
            channels,
            channels_opened=self._channels_opened,
            blocked=since is not None,
            blocked_seconds=blocked_seconds,
            heartbeat_timeouts=self._heartbeat_timeouts,
            connections_lost=int(self._lost and not self._closing_by_client),
        )

    def _notify_blocked(self, blocked: bool) -> None:
        for handler in list(self._blocked_handlers):
            self._call_hook(handler, blocked, self.blocked or "")

    def update_secret(self, new_secret: str | bytes, reason: str = "") -> Deferred[Any]:
        """
        Give the broker a new secret for this connection, such as a
        refreshed OAuth 2 token (C{connection.update-secret}).

        @return: a L{Deferred} firing with C{Connection.UpdateSecretOk}, or
            failing with the connection's error (or L{LocalProtocolError}
            when the spec has no C{connection.update-secret}).
        """
        try:
            method = self.core.methods.make(
                "connection.update-secret",
                fields={
                    "new_secret": new_secret.encode()
                    if isinstance(new_secret, str)
                    else new_secret,
                    "reason": reason,
                },
            )
        except (LocalProtocolError, TypeError) as e:
            return fail(e)
        return self.send_connection_method(method)

    def send_connection_method(self, method: Method) -> Deferred[Any]:
        """
        Send a method of the C{connection} class on channel 0.
        C{connection.close} closes as L{close} does.

        @return: a L{Deferred} firing with the reply when one is expected,
            else with C{None} once the method is handed to the transport; it
            fails with the connection's error or L{LocalProtocolError}.
        """
        if self.closed is not None:
            return fail(self.closed)
        if method.NAME == "connection.close":
            return self.close(getattr(method, "reply_text", ""))
        if not method.expects_reply:
            try:
                self.core.send_method(0, method)
            except LocalProtocolError as e:
                return fail(e)
            self._flush()
            return succeed(None)
        d: Deferred[Any] = AsyncioDeferred()
        self._channel0_waiters.append(d)
        try:
            self.core.send_method(0, method)
        except LocalProtocolError as e:
            self._channel0_waiters.remove(d)
            return fail(e)
        self._flush()
        return d

    def _call_hook(self, hook: Any, *args: Any) -> None:
        """
        Call application code; its failure is logged and never breaks the
        handling of the frames that follow.
        """
        try:
            hook(*args)
        except Exception:
            self.log.failure("{hook} failed", hook=getattr(hook, "__qualname__", hook))
