# -*- test-case-name: tests.test_txamqp_compat -*-
"""
txAMQP's C{txamqp.protocol}: L{AMQClient} and L{AMQChannel}, on top of
L{txamqp_next.connection.AMQPConnection} and L{txamqp_next.channel.Channel}.

Code written for txAMQP 0.8.2 runs on these after renaming C{txamqp} to
C{txamqp_next} in its imports::

    client = yield ClientCreator(reactor, AMQClient, TwistedDelegate(), "/",
                                 spec.load(path)).connectTCP(host, 5672)
    yield client.authenticate("guest", "guest")
    channel = yield client.channel(1)
    yield channel.channel_open()
    reply = yield channel.queue_declare(queue="jobs", durable=True)
    reply.method.name, reply.queue, reply.fields      # txAMQP messages
    reply = yield channel.basic_consume(queue="jobs", no_ack=True)
    queue = yield client.queue(reply.consumer_tag)
    msg = yield queue.get(timeout=5)
    msg.content.body, msg.content["delivery-mode"], msg.delivery_tag

Calls take the spec's fields positionally, in the spec's order (C{ticket}
first where the spec has one), or by keyword, under txAMQP's names or
txamqp_next's; replies, deliveries and returns are txAMQP messages
(L{txamqp_next._txmessage.TxMessage}).  The deliberate differences are in
C{docs/migrating-from-txamqp.md}: bodies are C{bytes}, C{nowait} is
honoured, a channel used before C{channel_open} is opened first, a call on
a closed channel fails at once, and the connection closes politely.

New code uses L{txamqp_next.connect}, L{AMQPConnection.open_channel} and
the typed replies of L{txamqp_next.channel.Channel}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from txamqp_next._deferred import AsyncioDeferred, fail, succeed
from txamqp_next._events import ConnectionOpened
from txamqp_next._methods import Method
from txamqp_next._params import ConnectionParameters, Credentials
from txamqp_next._txmessage import TxMessage
from txamqp_next.channel import Channel, Consumer, ConsumerCancelled
from txamqp_next.client import Closed, TwistedDelegate, TwistedEvent
from txamqp_next.connection import AMQPConnection
from txamqp_next.content import Content
from txamqp_next.errors import CHANNEL_ERROR, ChannelError, LocalProtocolError
from txamqp_next.errors import ConnectionClosed as ConnectionClosedError
from txamqp_next.message import Message
from txamqp_next.queue import TimeoutDeferredQueue
from txamqp_next.spec import Spec, load, spec_name

__all__ = ["AMQChannel", "AMQClient"]

#: the result of a channel.open not yet answered
_PENDING: Any = object()


def _content_of(message: Message) -> Content:
    """
    A received message's body and properties as a txAMQP L{Content}.
    """
    properties = {name: value for name, value in message.properties.items() if value is not None}
    return Content(message.body, properties=properties)


def _txmessage(reply: Any) -> Any:
    """
    A reply from a L{Channel} call as a txAMQP message (C{None} stays).
    """
    if reply is None:
        return None
    if isinstance(reply, Message):
        return TxMessage(reply.method, _content_of(reply))
    return TxMessage(reply)


class AMQChannel:
    """
    A channel the txAMQP way: every method of the loaded spec is a method
    of the channel (C{queue_declare}, C{basic_consume}, ...), taking the
    spec's fields positionally or by keyword, and C{content} for content
    methods.  Each returns a L{Deferred} firing with the reply as a txAMQP
    message, or with C{None} for methods without a reply.

    Channel 0 carries the connection's own methods (C{connection_open},
    C{connection_close}, ...).

    @ivar id: the channel id.
    @ivar client: the L{AMQClient}.
    """

    def __init__(self, id: int, client: AMQClient) -> None:
        self.id = id
        self.client = client
        self._channel: Channel | None = None
        # the reply to channel.open (or its failure) once it came
        self._open_result: Any = _PENDING
        self._open_waiters: list[Deferred[Any]] = []
        # consumer tags the application cancelled: their queues stay open
        self._cancelling: set[str] = set()
        # whether the application closed the channel with channel_close()
        self._closed_with_channel_close = False

    def __repr__(self) -> str:
        return f"<AMQChannel {self.id} {'closed' if self.closed else 'open'}>"

    @property
    def channel(self) -> Channel | None:
        """
        The txamqp_next L{Channel} underneath, once opened.
        """
        return self._channel

    @property
    def closed(self) -> bool:
        """
        Whether the channel (or the connection) has closed.
        """
        if self.client.closed is not None:
            return True
        return self._channel is not None and self._channel.closed is not None

    @property
    def reason(self) -> Any:
        """
        Why the channel closed, as txAMQP gave it: the broker's
        C{channel.close} message, or the failure or exception that ended it.
        """
        error = self.client.closed
        if self._channel is not None and self._channel.closed is not None:
            error = self._channel.closed
        return error.args[0] if error is not None and error.args else error

    # -- calls ---------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        full = spec_name(name)
        cls = self.client.core.methods.get(full)
        if cls is None:
            raise AttributeError(
                f"{type(self).__name__} has no method {name!r}: "
                f"{self.client.spec.describe()} defines no {full}"
            )

        def invoke(*args: Any, **fields: Any) -> Deferred[Any]:
            return self.invoke(cls, args, fields)

        invoke.__name__ = name
        invoke.__doc__ = cls.__doc__
        return invoke

    def invoke(
        self,
        method: str | type[Method],
        args: tuple[Any, ...] = (),
        fields: Mapping[str, Any] | None = None,
        content: Content | None = None,
    ) -> Deferred[Any]:
        """
        Call a method of the spec (txAMQP's C{invoke}).

        @param method: its full name (C{"queue.declare"}) or class.
        @param args: its fields in the spec's order.
        @param fields: its fields by name; C{content} for content methods.
        @return: a L{Deferred} firing with the reply as a txAMQP message, or
            C{None}; failing with the channel's or connection's error, a
            C{TypeError} for arguments the spec does not take, or
            L{LocalProtocolError}.
        """
        methods = self.client.core.methods
        fields = dict(fields or {})
        if content is None:
            content = fields.pop("content", None)
        try:
            built = _bits_by_truth(methods.make(method, args, fields))
        except LocalProtocolError as e:
            return fail(e)
        name = built.NAME
        if self.id == 0:
            return self._connection_call(built)
        if self.client.closed is not None:
            return fail(self.client.closed)
        if name == "channel.open":
            return self._open(built)
        if self._channel is None and self.client.open_channels_on_use:
            # the core sends the method once the broker has answered
            self._open(methods["channel.open"]()).addErrback(lambda _: None)
        elif self._channel is None or self._closed_with_channel_close:
            # txAMQP sent the method, and the broker closed the connection
            # with 504 (channel error); the client does so without sending it
            return self.client.channel_error(self.id)
        return self._send(built, content)

    def _open(self, method: Method) -> Deferred[Any]:
        """
        Open the channel, or wait for it if it is opening or open already.
        """
        ch = self._channel
        if ch is None or ch.closed is not None:
            try:
                ch = self.client.new_channel(self.id)
            except Exception as e:
                return fail(e)
            self._channel = ch
            self._closed_with_channel_close = False
            self._open_result = _PENDING
            self._open_waiters = []
            self._watch(ch)
            ch.call(method).addCallback(_txmessage).addBoth(self._opened)
        return self._when_opened()

    def _opened(self, result: Any) -> None:
        self._open_result = result
        waiters, self._open_waiters = self._open_waiters, []
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def _when_opened(self) -> Deferred[Any]:
        result = self._open_result
        if result is _PENDING:
            d: Deferred[Any] = AsyncioDeferred()
            self._open_waiters.append(d)
            return d
        return fail(result) if isinstance(result, Failure) else succeed(result)

    def _send(self, method: Method, content: Content | None) -> Deferred[Any]:
        ch = self._channel
        assert ch is not None
        name = method.NAME
        fields = dict(method.items())
        if name == "basic.publish":
            content = content if content is not None else Content()
            return ch.basic_publish(
                body=content.body_bytes(), properties=dict(content.properties), **fields
            )
        if name == "basic.consume":
            return self._consume(ch, method)
        if name == "channel.close":
            self._closed_with_channel_close = True
            return ch.call(method).addCallback(_txmessage)
        if name == "basic.cancel":
            tag = fields["consumer_tag"]
            self._cancelling.add(tag)
            return ch.basic_cancel(**fields).addCallback(_txmessage)
        if method.CONTENT:
            content = content if content is not None else Content()
            properties = ch.methods.properties_from(method.CLASS_ID, content.properties)
            return ch.call(method, properties, content.body_bytes()).addCallback(_txmessage)
        return ch.call(method).addCallback(_txmessage)

    def _consume(self, ch: Channel, method: Method) -> Deferred[Any]:
        fields = dict(method.items())
        client = self.client

        def deliver(message: Message) -> None:
            client._dispatch(self, TxMessage(message.method, _content_of(message)))

        def started(consumer: Consumer) -> Any:
            tag = consumer.consumer_tag
            consumer.when_ended().addCallback(self._consumer_ended, tag)
            if not method.expects_reply:
                return None
            return TxMessage(
                client.core.methods.make("basic.consume-ok", (), {"consumer_tag": tag})
            )

        return ch.basic_consume(callback=deliver, **fields).addCallback(started)

    def _consumer_ended(self, reason: BaseException, tag: str) -> None:
        if isinstance(reason, ConsumerCancelled) and tag in self._cancelling:
            # txAMQP left the queue open after basic_cancel
            self._cancelling.discard(tag)
            return
        queue = self.client.queues.get(tag)
        if queue is not None:
            queue.close(reason)

    def _watch(self, ch: Channel) -> None:
        client = self.client

        def returned(message: Message) -> None:
            # a returned message, or a delivery for a consumer the channel
            # does not know: the delegate's basic_return_ or basic_deliver
            client._dispatch(self, TxMessage(message.method, _content_of(message)))

        def notified(method: Method) -> None:
            if method.NAME not in ("basic.ack", "basic.nack") or ch.confirms is None:
                client._dispatch(self, TxMessage(method))

        def closed(reason: BaseException) -> None:
            method = getattr(reason, "method", None)
            if method is not None and method.NAME == "channel.close":
                client._dispatch(self, reason.args[0])
                client.channel_failed(self, Failure(reason))  # type: ignore[no-untyped-call]

        ch.add_return_handler(returned)
        # txAMQP gave the delegate every delivery
        ch.set_unclaimed_handler(returned)
        ch.add_listener(notified)
        ch.when_closed().addCallback(closed)

    def _connection_call(self, method: Method) -> Deferred[Any]:
        client = self.client
        name = method.NAME
        if name == "connection.open":
            return client.when_open().addCallback(
                lambda _: TxMessage(client.core.methods.make("connection.open-ok"))
            )
        if name == "connection.close":
            reply = TxMessage(client.core.methods.make("connection.close-ok"))
            return client.close(getattr(method, "reply_text", "")).addCallback(lambda _: reply)
        if name == "connection.start-ok":
            if client.core.credentials is not None:
                # the client answered start already (credentials given first)
                return succeed(None)
            return client.start(method.response, method.mechanism, method.locale).addCallback(
                lambda _: None
            )
        if name in ("connection.tune-ok", "connection.close-ok", "connection.secure-ok"):
            # the core answered the broker already
            return succeed(None)
        return client.send_connection_method(method).addCallback(_txmessage)

    def close(self, reason: object = None) -> Deferred[Any]:
        """
        Close the channel (txAMQP closed it locally; this closes it with
        the broker too).
        """
        if self._channel is None:
            return succeed(None)
        return self._channel.close(reason)


def _bits_by_truth(method: Method) -> Method:
    """
    C{method} with its bit fields made C{bool}s: txAMQP code passes them as
    it likes (C{exclusive="True"}, C{no_ack=1}) and txAMQP sent their truth.
    """
    changed = {
        f.name: bool(getattr(method, f.name))
        for f in method.SPEC.fields
        if f.type == "bit" and not f.reserved and type(getattr(method, f.name)) is not bool
    }
    return method.replace(**changed) if changed else method


class AMQClient(AMQPConnection):
    """
    txAMQP's client protocol, on L{AMQPConnection}.

    The signature starts with txAMQP's C{(delegate, vhost, spec, heartbeat,
    clock, insist)}; the keyword-only ones are L{AMQPConnection}'s
    parameters.  Without C{credentials} the handshake waits for
    L{authenticate} (or L{start}), as with txAMQP.

    @param delegate: a L{TwistedDelegate} (one is made when omitted).
    @param spec: a L{Spec}, a spec file path or short name; the default
        0-9-1 spec when omitted.
    @param heartbeat: the heartbeat interval to ask for, in seconds.  As in
        RabbitMQ's rules, 0 asks for none but the broker's interval wins.
    @param insist: ignored (0-8's C{insist} is always sent as false).

    @ivar delegate: the delegate.
    @ivar channels: channel id to L{AMQChannel}.
    @ivar queues: consumer tag to the L{TimeoutDeferredQueue} of its
        deliveries (L{queue}).
    @ivar basic_return_queue: returned messages.
    @ivar started: fired when the connection opens (failed if it ends first).
    @ivar disconnected: fired when the transport is gone.
    @ivar heartbeatInterval: the heartbeat interval: the one asked for, then
        the one the broker and client agreed on.
    @ivar MAX_LENGTH: the largest frame: 4096 until tuned, then the
        negotiated C{frame_max}.
    """

    channelClass = AMQChannel
    #: heartbeat intervals without traffic before the peer is given up
    #: (txAMQP's check before the connection opens; after, the core gives up
    #: after two)
    MAX_UNSEEN_HEARTBEAT = 3
    MAX_LENGTH = 4096

    def __init__(
        self,
        delegate: Any = None,
        vhost: str = "/",
        spec: Spec | str | None = None,
        heartbeat: int | None = 0,
        clock: IReactorTime | None = None,
        insist: bool = False,
        *,
        params: ConnectionParameters | None = None,
        **overrides: Any,
    ) -> None:
        if params is None:
            params = ConnectionParameters(credentials=None)
        overrides.setdefault("vhost", vhost)
        overrides.setdefault("heartbeat", heartbeat)
        if spec is not None:
            overrides.setdefault("spec", spec if isinstance(spec, Spec) else load(spec))
        super().__init__(params, clock=clock, **overrides)
        self.delegate = delegate if delegate is not None else TwistedDelegate()
        self.delegate.client = self
        self.insist = insist
        self.heartbeatInterval = heartbeat or 0
        self.channels: dict[int, AMQChannel] = {}
        self.queues: dict[str, TimeoutDeferredQueue[Any]] = {}
        self.basic_return_queue: TimeoutDeferredQueue[Any] = TimeoutDeferredQueue(self.clock)
        self.started = TwistedEvent()
        self.disconnected = TwistedEvent()
        #: open a channel on its first call when the application did not
        #: call channel_open() (txAMQP's AMQPump let unit tests skip it, and
        #: AMQPump sets this); otherwise such a call ends the connection
        #: with 504, as the broker would have when txAMQP sent it
        self.open_channels_on_use = False
        self.response: Any = None
        self.mechanism: str | None = None
        self.locale = "en_US"
        self.checkHB: IDelayedCall | None = None
        if self.heartbeatInterval > 0:
            # txAMQP gives up on a peer silent this long, handshake included
            self.checkHB = self.clock.callLater(
                self.heartbeatInterval * self.MAX_UNSEEN_HEARTBEAT, self.check_heartbeat
            )

    # -- txAMQP's calls ------------------------------------------------------

    def channel(self, id: int) -> Deferred[AMQChannel]:
        """
        The channel with this id (the same object every time), not opened
        until C{channel_open()} (or its first use).
        """
        ch = self.channels.get(id)
        if ch is None:
            ch = self.channels[id] = self.channelClass(id, self)
        return succeed(ch)

    def queue(self, key: str) -> Deferred[TimeoutDeferredQueue[Any]]:
        """
        The queue of deliveries for a consumer tag.
        """
        return succeed(self.queue_for(key))

    def queue_for(self, key: str) -> TimeoutDeferredQueue[Any]:
        """
        L{queue}, without the L{Deferred}.
        """
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = TimeoutDeferredQueue(self.clock)
        return q

    def authenticate(
        self, username: str, password: str, mechanism: str = "AMQPLAIN", locale: str = "en_US"
    ) -> Deferred[Any]:
        """
        Log in and open the virtual host (txAMQP's way).

        @param mechanism: C{"AMQPLAIN"} (txAMQP's default) or C{"PLAIN"}.
        @return: a L{Deferred} firing with the broker's C{connection.open-ok}
            as a txAMQP message, or failing with
            L{errors.AuthenticationError}, L{errors.NotAllowed} (a missing
            vhost), or C{ValueError} for another mechanism.
        """
        if mechanism == "AMQPLAIN":
            response: Any = {"LOGIN": username, "PASSWORD": password}
        elif mechanism == "PLAIN":
            response = "\0" + username + "\0" + password
        else:
            return fail(ValueError("Unknown mechanism:" + mechanism))
        return self.start(response, mechanism, locale)

    def start(
        self, response: Any, mechanism: str = "AMQPLAIN", locale: str = "en_US"
    ) -> Deferred[Any]:
        """
        Log in with a SASL response made by the caller: a mapping for
        AMQPLAIN, bytes or text otherwise.

        @return: as L{authenticate}.
        """
        self.response = response
        self.mechanism = mechanism
        self.locale = locale
        open_ok = TxMessage(self.core.methods.make("connection.open-ok"))
        if self._opened:
            return succeed(open_ok)
        credentials = Credentials.from_response(mechanism, response)
        return self.login(credentials).addCallback(lambda _: open_ok)

    def close(self, reason: object = None, within: float = 0) -> Deferred[None]:
        """
        Close the connection, as txAMQP did: with C{within} 0 (the default)
        at once, failing every channel, call and queue; with C{within}
        seconds, cleanly, waiting that long at most for the broker's
        C{close-ok}.  Either way C{connection.close} is sent first, so the
        broker sees a clean close.

        @param reason: why (the close's reply text).
        @return: a L{Deferred} firing with C{None} once the transport is
            gone.
        """
        text = str(reason) if reason is not None else ""
        if isinstance(reason, BaseException):
            text = text or type(reason).__name__
        if within > 0:
            return super().close(text, within)
        d = self.when_closed()
        if self.closed is None and self.transport is not None and not self._lost:
            self._client_closing(text)
            self.core.close(reply_text=text)
            self._flush(now=True)
            self.closed = ConnectionClosedError(
                reply_text=f"closed by the client: {text}" if text else "closed by the client",
                reason=reason,
            )
            self._fail_everything(self.closed)
            self._lose_transport()
        return d

    def channel_error(self, channel: int) -> Deferred[Any]:
        """
        A call on channel C{channel}, which the application never opened or
        closed with C{channel_close()}: end the connection with 504 (channel
        error), as the broker did when txAMQP sent such a call, without
        sending the call.

        @return: a L{Deferred} failing with L{errors.ChannelError}, a
            C{ConnectionClosed} whose C{args[0]} is the C{connection.close}
            sent.
        """
        if self.closed is None:
            text = f"CHANNEL_ERROR - channel {channel} is not open (the client's call was not sent)"
            close = self.core.methods.make(
                "connection.close", (), {"reply_code": CHANNEL_ERROR, "reply_text": text}
            )
            error = ChannelError(CHANNEL_ERROR, text, method=close)
            if self.transport is not None and not self._lost:
                self.core.close(CHANNEL_ERROR, text)
                self._flush(now=True)
            self.log.warn("{error}", error=error)
            self.closed = error
            self._fail_everything(error)
            self._lose_transport()
        return fail(self.closed)

    def do_close(self, reason: Any) -> None:
        """
        End the connection at once, failing everything with C{reason}.
        """
        if self.closed is None:
            self.closed = Closed(reason=reason)
            self._fail_everything(self.closed)
        self._lose_transport()

    def check_0_8(self) -> bool:
        """
        Whether the spec is AMQP 0-8.
        """
        return self.spec.major == 8

    def channel_failed(self, channel: AMQChannel, reason: Failure) -> None:
        """
        The broker closed C{channel} (hook for subclasses).
        """

    # -- heartbeats, txAMQP's hooks ------------------------------------------

    def send_heartbeat(self) -> None:
        """
        Send a heartbeat frame now.  The client calls it whenever one is
        due; a subclass may override it (calling this one to send).
        """
        self.core.send_heartbeat(self.clock.seconds())
        self._flush()

    def reschedule_send_heartbeat(self) -> None:
        """
        txAMQP's hook after sending; heartbeats are timed by the core.
        """

    def reschedule_check_heartbeat(self) -> None:
        """
        Data arrived: before the connection is open, restart the check that
        gives up on a silent peer.  Called for every chunk received while
        heartbeats are on.
        """
        if self.checkHB is not None and self.checkHB.active():
            self.checkHB.reset(self.heartbeatInterval * self.MAX_UNSEEN_HEARTBEAT)

    def check_heartbeat(self) -> None:
        """
        The peer stayed silent: drop the connection without a close.
        """
        if self.checkHB is not None and self.checkHB.active():
            self.checkHB.cancel()
        self.checkHB = None
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _tick(self) -> None:
        if self.core.heartbeat_due(self.clock.seconds()):
            self.send_heartbeat()
        super()._tick()

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if self.heartbeatInterval > 0 and not self._lost:
            self.reschedule_check_heartbeat()

    # -- the delegate --------------------------------------------------------

    def _dispatch(self, channel: AMQChannel, message: TxMessage) -> None:
        self._call_hook(self.delegate.dispatch, channel, message)

    def _channel0(self) -> AMQChannel:
        ch = self.channels.get(0)
        if ch is None:
            ch = self.channels[0] = self.channelClass(0, self)
        return ch

    def _connection_method(self, method: Method) -> None:
        super()._connection_method(method)
        self._dispatch(self._channel0(), TxMessage(method))

    def _connection_opened(self, event: ConnectionOpened) -> None:
        if self.checkHB is not None and self.checkHB.active():
            self.checkHB.cancel()
        self.checkHB = None
        self.MAX_LENGTH = event.frame_max or 131072
        if self.heartbeatInterval or event.heartbeat:
            self.heartbeatInterval = event.heartbeat
        self.started.set()

    def _connection_failed(self, reason: BaseException) -> None:
        method = getattr(reason, "method", None)
        if method is not None and method.NAME == "connection.close":
            self._dispatch(self._channel0(), reason.args[0])
        for q in self.queues.values():
            q.close(reason)
        self.basic_return_queue.close(reason)
        self.started.fail_if_not_fired(reason)

    def _connection_ended(self, reason: BaseException, lost: Failure) -> None:
        if self.checkHB is not None and self.checkHB.active():
            self.checkHB.cancel()
        self.checkHB = None
        self.disconnected.set()
        self._call_hook(self.delegate.close, reason.args[0] if reason.args else reason)
