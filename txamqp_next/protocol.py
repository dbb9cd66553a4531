# -*- test-case-name: tests.test_protocol -*-
"""
L{AMQClient}: the Twisted protocol that drives the sans-IO AMQP core.

C{dataReceived} feeds the core, routes the events it returns to channels,
and writes what the core has to send.  The client is a plain L{Protocol}, so
it works with endpoints, C{ClientCreator}, C{connectProtocol} and
C{ClientService}; L{txamqp_next.connect} is the usual way to get one.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp_next._connection import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ChannelState,
    Connection,
    ConnectionState,
    Credentials,
)
from txamqp_next._events import (
    ChannelClosed,
    ConnectionClosed,
    ConnectionOpened,
    ContentReceived,
    Event,
    MethodReceived,
)
from txamqp_next._methods import Method
from txamqp_next._tls import tls_error_for
from txamqp_next.channel import Channel
from txamqp_next.client import TwistedEvent
from txamqp_next.errors import (
    AuthenticationError,
    HeartbeatTimeout,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from txamqp_next.errors import ConnectionClosed as ConnectionClosedError
from txamqp_next.message import Message
from txamqp_next.queue import TimeoutDeferredQueue
from txamqp_next.spec import Spec, load

__all__ = ["DEFAULT_MAX_HELD_BYTES", "AMQClient"]

#: how many body bytes of publishes may wait while publishing is paused
DEFAULT_MAX_HELD_BYTES = 256 * 1024 * 1024

# the first bytes of TLS 1.x alert and handshake records
_TLS_RECORDS = (b"\x15\x03", b"\x16\x03")

#: while received frames are handled, the most sends (and body bytes) that
#: wait for one write
_COALESCE_WRITES = 64
_COALESCE_BYTES = 16384


#: the transports whose socket L{AMQClient._write} may write to at once
#: when their buffer is empty: Twisted's plain TCP connections, whose
#: C{writeSomeData} and buffer attributes it uses
_DIRECT_SEND_TRANSPORTS: frozenset[type] = frozenset({tcp.Client, tcp.Server})
#: what such a transport reads at most per C{recv}, and buffers before it
#: pauses its producer (Twisted's default is 64 KiB)
_TCP_BUFFER_SIZE = 262144
#: larger writes go to the transport whole: what a socket does not take at
#: once would have to be copied to hand the rest over
_DIRECT_SEND_MAX = 65536


@implementer(IPushProducer)
class AMQClient(Protocol):
    """
    An AMQP 0-9-1 client connection.

    The client registers itself as the transport's streaming producer: when
    the transport's write buffer passes its high-water mark it pauses the
    client, which then holds publishes (their L{Deferred}s stay pending)
    until the buffer drains.  Applications see this through
    L{publishing_paused}, L{when_writable} and L{register_producer}.

    The signature starts with txAMQP's C{(delegate, vhost, spec, heartbeat,
    clock, insist)}; the keyword-only arguments are new.

    @param delegate: a txAMQP-style delegate (see
        L{txamqp_next.client.TwistedDelegate}); it receives deliveries that
        no consumer claims, returned messages and the close.  Optional.
    @param vhost: the virtual host to open.
    @param spec: a L{Spec}, a spec file path or short name; the default
        0-9-1 spec when omitted.
    @param heartbeat: the heartbeat interval to ask for, in seconds; C{None}
        accepts the broker's, C{0} asks for none.
    @param clock: the reactor (for timers); the global one when omitted.
    @param insist: ignored (txAMQP compatibility).
    @param credentials: who to log in as.  When given the handshake runs by
        itself; otherwise it waits for L{authenticate} (txAMQP's way).
    @param close_timeout: how long L{close} waits for the broker's
        C{close-ok} before dropping the connection.

    @ivar server_properties: what the broker said of itself.
    @ivar channels: open channels by id.
    @ivar basic_return_queue: returned messages no handler took (txAMQP).
    @ivar closed: the reason the connection ended, or C{None} while it is up.
    """

    log = Logger()

    def __init__(
        self,
        delegate: Any = None,
        vhost: str = "/",
        spec: Spec | str | None = None,
        heartbeat: int | None = None,
        clock: IReactorTime | None = None,
        insist: bool = False,
        *,
        credentials: Credentials | None = None,
        frame_max: int = 131072,
        channel_max: int = 0,
        connection_name: str | None = None,
        client_properties: Mapping[str, Any] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        close_timeout: float = 10.0,
        max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.clock: IReactorTime = clock
        if spec is None or isinstance(spec, str):
            spec = load(spec or "0-9-1")
        self.spec = spec
        self.vhost = vhost
        self.delegate = delegate
        if delegate is not None:
            delegate.client = self
        self.core = Connection(
            spec,
            credentials,
            vhost=vhost,
            heartbeat=heartbeat,
            frame_max=frame_max,
            channel_max=channel_max,
            client_properties=client_properties,
            connection_name=connection_name,
            max_message_size=max_message_size,
        )
        self.close_timeout = close_timeout
        #: the most body bytes held back over all channels while publishing
        #: is paused; a publish past it fails with L{PublishBufferFull}
        self.max_held_bytes = max_held_bytes
        self._held_bytes = 0
        self.channels: dict[int, Channel] = {}
        self.queues: dict[str, TimeoutDeferredQueue[Message]] = {}
        self.basic_return_queue: TimeoutDeferredQueue[Message] = TimeoutDeferredQueue(clock)
        self.server_properties: Mapping[str, Any] = {}
        self.closed: BaseException | None = None
        self._open_waiters: list[Deferred[AMQClient]] = []
        self._lost_waiters: list[Deferred[None]] = []
        self._close_call: IDelayedCall | None = None
        self._heartbeat: LoopingCall | None = None
        self._opened = False
        self._lost = False
        #: why the broker blocked publishing, or None
        self.blocked: str | None = None
        self._blocked_handlers: list[Callable[[bool, str], object]] = []
        self._channel0_waiters: deque[tuple[Method, Deferred[Any]]] = deque()
        # backpressure: the transport paused us; publishing is paused (the
        # transport paused us or the broker blocked us); the application's
        # producers, and whether we paused them
        self._write_paused = False
        self._publishing_paused = False
        self._producers: list[IPushProducer] = []
        self._producers_paused = False
        self._writable_waiters: list[Deferred[None]] = []
        #: fired when the connection opens, failed if it ends before (txAMQP)
        self.started = TwistedEvent()
        #: fired when the transport is gone (txAMQP)
        self.disconnected = TwistedEvent()
        # True while received events are handled, and what waits for the
        # write that follows; see _flush
        self._dispatching = False
        self._waiting_writes = 0
        self._waiting_bytes = 0
        self._turn_flush: IDelayedCall | None = None
        # whether _flush may send on the socket itself (see connectionMade)
        self._send_direct = False

    def __repr__(self) -> str:
        return f"<AMQClient vhost={self.vhost!r} {self.core.state.value}>"

    # -- Twisted hooks -------------------------------------------------------

    def connectionMade(self) -> None:
        assert self.transport is not None
        self._send_direct = type(self.transport) in _DIRECT_SEND_TRANSPORTS
        if self._send_direct:
            self.transport.bufferSize = _TCP_BUFFER_SIZE  # type: ignore[attr-defined]
        try:
            self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError) as e:
            # a transport without producers, or with one already registered
            self.log.warn("publishing ignores the transport's buffer: {error}", error=e)
        self._flush()

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
        d: Deferred[None] = Deferred()
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
            for ch in self.channels.values():
                ch._holding = True
            if not self._producers_paused:
                self._producers_paused = True
                for producer in list(self._producers):
                    self._call_hook(producer.pauseProducing)
            return
        for ch in list(self.channels.values()):
            ch._update_holding()
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

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.core.receive_data(data)
        except RemoteProtocolError as e:
            if not self._opened and data[:2] in _TLS_RECORDS:
                # a TLS server's alert (or handshake) record: no frame type
                # is 0x15 or 0x16
                e = RemoteProtocolError(
                    e.reply_code,
                    "the server answered with TLS, not AMQP: is this its TLS port? "
                    "use amqps://",
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
        self._fail_everything(self.closed)
        self.started.fail_if_not_fired(self.closed)
        self.disconnected.set()
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)
        producers, self._producers = self._producers, []
        for producer in producers:
            self._call_hook(producer.stopProducing)
        if self.delegate is not None and hasattr(self.delegate, "close"):
            self.delegate.close(self.closed)

    def _lost_reason(self, reason: Failure) -> BaseException:
        tls_error = tls_error_for(reason.value) if reason.value is not None else None
        if tls_error is not None:
            return tls_error
        text = f"connection lost: {reason.getErrorMessage()}"
        if not self._opened and self.core.state is ConnectionState.AWAIT_TUNE:
            return AuthenticationError(
                reply_text="the broker closed the connection after start-ok: "
                "it probably refused the credentials"
            )
        return ConnectionClosedError(reply_text=text)

    # -- the handshake -------------------------------------------------------

    def authenticate(
        self, username: str, password: str, mechanism: str = "PLAIN", locale: str = "en_US"
    ) -> Deferred[AMQClient]:
        """
        Log in and open the virtual host (txAMQP's way to start; L{connect}
        does it for you).

        @return: a L{Deferred} firing with this client once the connection
            is open, or failing with L{errors.AuthenticationError},
            L{errors.NotAllowed} (a missing vhost), ...
        """
        try:
            events = self.core.authenticate(Credentials(username, password, mechanism))
        except (LocalProtocolError, ValueError) as e:
            return fail(e)
        d = self.when_open()
        self._handle_events(events, None)
        return d

    def when_open(self) -> Deferred[AMQClient]:
        """
        @return: a L{Deferred} firing with this client once the handshake is
            done (at once if it is), or failing with why it never will be.
        """
        if self.closed is not None:
            return fail(self.closed)
        if self._opened:
            return succeed(self)
        d: Deferred[AMQClient] = Deferred()
        self._open_waiters.append(d)
        return d

    def when_closed(self) -> Deferred[None]:
        """
        @return: a L{Deferred} firing with C{None} once the transport is gone.
        """
        if self._lost:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lost_waiters.append(d)
        return d

    # -- channels ------------------------------------------------------------

    def channel(self, id: int | None = None) -> Deferred[Channel]:
        """
        Get a channel object, not yet opened (txAMQP's C{client.channel(id)};
        call C{channel_open()} on it).  Asking for an id twice gives the same
        channel while it lives.

        @param id: the channel id; the lowest free one when omitted.
        """
        if self.closed is not None:
            return fail(self.closed)
        if id is None:
            id = self._free_channel_id()
        if id == 0:
            # txAMQP's channel 0: its calls are connection methods
            return succeed(Channel(self, 0))
        existing = self.channels.get(id)
        if existing is not None and existing.closed is None:
            return succeed(existing)
        ch = Channel(self, id)
        self.channels[id] = ch
        return succeed(ch)

    def open_channel(self, id: int | None = None) -> Deferred[Channel]:
        """
        Open a new channel.

        @return: a L{Deferred} firing with the open L{Channel}.
        """
        d = self.channel(id)
        return d.addCallback(lambda ch: ch.channel_open())

    def _free_channel_id(self) -> int:
        limit = self.core.channel_max or 65535
        for candidate in range(1, limit + 1):
            # the core may still hold an id we forgot: a channel we closed
            # after a fault stays closing until the broker's close-ok
            if (
                candidate not in self.channels
                and self.core.channel_state(candidate) is ChannelState.CLOSED
            ):
                return candidate
        raise LocalProtocolError(f"all {limit} channels are in use")

    def queue(self, key: str) -> Deferred[TimeoutDeferredQueue[Message]]:
        """
        The queue of deliveries for a consumer tag (txAMQP's
        C{client.queue(consumer_tag)}).
        """
        return succeed(self._queue_for(key))

    def _queue_for(self, key: str) -> TimeoutDeferredQueue[Message]:
        q = self.queues.get(key)
        if q is None or q.closed is not None:
            q = self.queues[key] = TimeoutDeferredQueue(self.clock)
        return q

    # -- closing -------------------------------------------------------------

    def close(self, reason: object = None, within: float = 0) -> Deferred[None]:
        """
        Close the connection: send C{connection.close}, wait for
        C{close-ok} (at most C{within} seconds, or C{close_timeout} when
        C{within} is 0), then drop the transport.

        @return: a L{Deferred} firing with C{None} once the transport is gone.
        """
        d = self.when_closed()
        if self._lost or self.transport is None:
            return d
        if self.core.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return d
        self.core.close(reply_text=str(reason) if reason else "")
        self._flush(now=True)
        if not self._core_closing():
            self.closed = ConnectionClosedError(reply_text="closed by the client")
            self._lose_transport()
            return d
        timeout = within or self.close_timeout
        self._close_call = self.clock.callLater(timeout, self._close_timed_out)
        return d

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
        chunks = self.core.chunks_to_send()
        if chunks and self.transport is not None:
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
            # re-entered from a callback (authenticate, say): the outer
            # call flushes
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
            ch = self.channels.get(event.channel)
            if ch is not None:
                ch._content_received(event.method, event.properties, event.body)
        elif isinstance(event, MethodReceived):
            if event.channel == 0:
                self._connection_method(event.method)
            else:
                ch = self.channels.get(event.channel)
                if ch is not None:
                    ch._method_received(event.method)
        elif isinstance(event, ChannelClosed):
            ch = self.channels.pop(event.channel, None)
            if ch is not None:
                if event.error is not None:
                    self.log.warn(
                        "channel {channel} closed: {error}",
                        channel=event.channel,
                        error=event.error,
                    )
                ch._closed(event.error)
        elif isinstance(event, ConnectionOpened):
            self._on_open(event)
        elif isinstance(event, ConnectionClosed):
            self._on_close(event)

    def _on_open(self, event: ConnectionOpened) -> None:
        self._opened = True
        self.server_properties = event.server_properties
        if event.heartbeat:
            self._heartbeat = LoopingCall(self._tick)
            self._heartbeat.clock = self.clock
            self._heartbeat.start(event.heartbeat / 2, now=True)
        self.started.set()
        waiters, self._open_waiters = self._open_waiters, []
        for d in waiters:
            d.callback(self)

    def _on_close(self, event: ConnectionClosed) -> None:
        if event.error is None:
            self.closed = ConnectionClosedError(200, "closed by the client")
        else:
            self.log.warn("connection closed: {error}", error=event.error)
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
        channel0, self._channel0_waiters = self._channel0_waiters, deque()
        for _, d0 in channel0:
            d0.errback(reason)
        channels, self.channels = self.channels, {}
        for ch in channels.values():
            ch._closed(reason)
        for q in self.queues.values():
            q.close(reason)
        self.basic_return_queue.close(reason)
        writable, self._writable_waiters = self._writable_waiters, []
        for dw in writable:
            dw.errback(reason)

    def _connection_method(self, method: Method) -> None:
        name = method.NAME
        if name == "connection.blocked":
            self.blocked = str(getattr(method, "reason", "")) or "blocked"
            self.log.warn("the broker blocked publishing: {reason}", reason=self.blocked)
            self._notify_blocked(True)
            self._update_paused()
        elif name == "connection.unblocked":
            self.blocked = None
            self.log.info("the broker unblocked publishing")
            self._notify_blocked(False)
            self._update_paused()
        elif self._channel0_waiters and type(method) in self._channel0_waiters[0][0].RESPONSES:
            _, d = self._channel0_waiters.popleft()
            d.callback(method)
        else:
            self.log.info("broker says {method}", method=method)

    def add_blocked_handler(self, handler: Callable[[bool, str], object]) -> None:
        """
        Call C{handler(blocked, reason)} when the broker blocks publishing
        (C{connection.blocked}, typically on a memory or disk alarm) and
        when it unblocks it (C{reason} is then C{""}).  While blocked,
        publishes wait (their L{Deferred}s stay pending) and go out in order
        on unblock; L{blocked} holds the reason.
        """
        self._blocked_handlers.append(handler)

    def _notify_blocked(self, blocked: bool) -> None:
        for handler in list(self._blocked_handlers):
            self._call_hook(handler, blocked, self.blocked or "")

    def update_secret(self, new_secret: str | bytes, reason: str = "") -> Deferred[Any]:
        """
        Give the broker a new secret for this connection, such as a
        refreshed OAuth 2 token (C{connection.update-secret}).

        @return: a L{Deferred} firing with C{Connection.UpdateSecretOk}, or
            failing with the connection's error.
        """
        method = self.core.methods["connection.update-secret"](
            new_secret=new_secret.encode() if isinstance(new_secret, str) else new_secret,
            reason=reason,
        )
        return self._call0(method)

    def _call0(self, method: Method) -> Deferred[Any]:
        """
        Send a connection method (txAMQP's C{client.channel(0)} calls).
        C{connection.close} closes as L{close} does.
        """
        if self.closed is not None:
            return fail(self.closed)
        if method.NAME == "connection.close":
            return self.close(getattr(method, "reply_text", ""))
        try:
            self.core.send_method(0, method)
        except LocalProtocolError as e:
            return fail(e)
        self._flush()
        if not method.expects_reply:
            return succeed(None)
        d: Deferred[Any] = Deferred()
        self._channel0_waiters.append((method, d))
        return d

    def _unhandled(self, channel: Channel, method: Method) -> None:
        self.log.info(
            "unhandled {method} on channel {channel}", method=method.NAME, channel=channel.id
        )

    def _deliver_unclaimed(self, channel: Channel, message: Message) -> None:
        if self.delegate is not None and hasattr(self.delegate, "basic_deliver"):
            self._call_hook(self.delegate.basic_deliver, channel, message)
        else:
            self._queue_for(message.consumer_tag).put(message)

    def _returned(self, channel: Channel, message: Message) -> None:
        if self.delegate is not None and hasattr(self.delegate, "basic_return_"):
            self._call_hook(self.delegate.basic_return_, channel, message)
        else:
            self.basic_return_queue.put(message)

    def _call_hook(self, hook: Any, *args: Any) -> None:
        """
        Call application code; its failure is logged and never breaks the
        handling of the frames that follow.
        """
        try:
            hook(*args)
        except Exception:
            self.log.failure("{hook} failed", hook=getattr(hook, "__qualname__", hook))
