# -*- test-case-name: tests.test_protocol -*-
"""
L{Channel}: an AMQP channel of an L{AMQPConnection}, with a L{Deferred} for
every call.

Every method of the loaded spec is a method of the channel, with PEP 8
keyword arguments (and C{body} and C{properties} for a method that carries
content): C{ch.queue_declare(queue="q", durable=True)} returns a
L{Deferred} that fires with the reply (a C{Queue.DeclareOk}); methods that
expect no reply (and synchronous ones sent with C{no_wait=True}) fire with
C{None} once queued for the socket (written in the same reactor turn).
The calls of the default spec are typed and documented
(L{txamqp_next.methods.ChannelMethods}); a method only another spec has is
called by attribute at run time, untyped, or by name with L{Channel.invoke}.

A call sends exactly the fields the loaded spec defines: a keyword for a
field the spec lacks is accepted only with an empty value
(C{basic_consume(arguments={})} works with the 0-8 spec, which has no
C{arguments}); other wrong arguments raise C{TypeError} at once, naming
the spec, and send nothing.  A method the spec lacks fails its L{Deferred}
with L{LocalProtocolError} naming the spec (C{confirm_select} with 0-8).

Calls on one channel are ordered; many may be outstanding.  A broker error
fails the call it answers and every later call on the channel with the
typed exception (L{errors.NotFound}, ...); other channels are unaffected.
Cancelling a pending call closes its channel.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from txamqp_next import methods as typed
from txamqp_next._connection import ChannelState, truncate_shortstr
from txamqp_next._deferred import AsyncioDeferred, fail, succeed
from txamqp_next._docs import method_doc
from txamqp_next._methods import Method, Properties
from txamqp_next.confirms import ConfirmTracker, PublishNacked, Unroutable
from txamqp_next.errors import (
    COMMAND_INVALID,
    AMQPError,
    ChannelClosed,
    LocalProtocolError,
    PublishBufferFull,
)
from txamqp_next.message import Message
from txamqp_next.queue import Closed as QueueClosed
from txamqp_next.queue import TimeoutDeferredQueue
from txamqp_next.spec import spec_name
from txamqp_next.stats import ChannelStats

if TYPE_CHECKING:
    from txamqp_next.connection import AMQPConnection, ChannelLink

__all__ = [
    "Channel",
    "Consumer",
    "ConsumerCancelled",
    "MessageStream",
    "PublishNacked",
    "Unroutable",
]

_T = TypeVar("_T")

DeliveryCallback = Callable[[Message], object]
MethodListener = Callable[[Method], object]
# a waiting call's reply handler (see Channel._call) and the queue entry
_Then = Callable[["Channel", Any, Any], Any]
_Waiting = tuple[Deferred[Any], "_Then | None", Any]

#: how many distinct (exchange, routing key, flags) a channel keeps a
#: ready C{basic.publish} for
_PUBLISH_METHOD_CACHE = 256


def _the_channel(channel: Channel, _: object, __: object) -> Channel:
    return channel


def _the_arg(_: Channel, __: object, value: _T) -> _T:
    return value


def _message_or_none(_: Channel, reply: object, __: object) -> Message | None:
    return reply if isinstance(reply, Message) else None


def _body_bytes(body: object) -> bytes:
    """
    A message body as the core takes it: C{str} is encoded as UTF-8;
    C{bytearray} and C{memoryview} are taken as they are (not copied).

    @raise TypeError: any other type (a C{dict}, C{None}, ...).
    """
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return body  # type: ignore[return-value]
    raise TypeError(
        f"a message body is bytes (or str, bytearray, memoryview), not {type(body).__name__}"
    )


class ConsumerCancelled(AMQPError, QueueClosed):
    """
    The consumer ended: the broker cancelled it (its queue was deleted, for
    instance) or the application did.  It is also a
    L{txamqp_next.queue.Closed}, which is what txAMQP code waiting on
    C{client.queue(tag).get()} catches.
    """

    def __init__(self, text: str) -> None:
        AMQPError.__init__(self, text)
        self.reason = None


class MessageStream:
    """
    What consumers share: without a callback, a consumer is an async
    iterator over the messages of its C{queue}, which ends when the consumer
    ends (L{_finish}); L{when_ended} tells why.

    @ivar cancelled: why the consumer ended, or C{None} while it runs.
    """

    cancelled: BaseException | None = None
    # who waits for the end (when_ended), made for the first one
    _end_waiters: list[Deferred[BaseException]] | None = None
    # the clock of the queue's timeouts; the queue itself is made when first
    # needed: a consumer with a callback never uses it, and an empty one is
    # some 1,500 bytes (two deques), most of what a consumer would weigh
    _clock: IReactorTime
    _queue: TimeoutDeferredQueue[Message] | None = None

    @property
    def queue(self) -> TimeoutDeferredQueue[Message]:
        """
        The consumer's messages when it has no callback (a
        L{TimeoutDeferredQueue}); closed once the consumer has ended.
        """
        queue = self._queue
        if queue is None:
            queue = self._queue = TimeoutDeferredQueue(self._clock)
            if self.cancelled is not None:
                queue.close(self.cancelled)
        return queue

    def _finish(self, reason: BaseException) -> bool:
        """
        End the consumer (once): close its queue and tell who waits.

        @return: whether it ended now (C{False} if it had already).
        """
        if self.cancelled is not None:
            return False
        self.cancelled = reason
        if self._queue is not None:
            self._queue.close(reason)
        waiters, self._end_waiters = self._end_waiters or [], None
        for d in waiters:
            d.callback(reason)
        return True

    def when_ended(self) -> Deferred[BaseException]:
        """
        @return: a L{Deferred} firing, once the consumer has ended, with why:
            L{ConsumerCancelled} (by the broker or the application) or the
            channel's or connection's error.
        """
        if self.cancelled is not None:
            return succeed(self.cancelled)
        d: Deferred[BaseException] = AsyncioDeferred()
        if self._end_waiters is None:
            self._end_waiters = []
        self._end_waiters.append(d)
        return d

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.queue.get()
        except QueueClosed:
            raise StopAsyncIteration from None


class Consumer(MessageStream):
    """
    A consumer started by L{Channel.basic_consume}.

    Deliveries go to C{callback} when one was given, else into C{queue} (a
    L{TimeoutDeferredQueue}).  Without a callback the consumer is also an
    async iterator: C{async for message in consumer: ...}; the loop ends
    when the consumer is cancelled.

    @ivar consumer_tag: the tag the broker knows it by.
    @ivar channel: its channel.
    @ivar cancelled: why it ended, or C{None} while it runs.
    """

    def __init__(
        self,
        channel: Channel,
        consumer_tag: str,
        callback: DeliveryCallback | None,
    ) -> None:
        self.channel = channel
        self.consumer_tag = consumer_tag
        self._clock = channel._link.clock
        self.callback = callback
        self.cancelled: BaseException | None = None

    def deliver(self, message: Message) -> None:
        if self.callback is None:
            self.queue.put(message)
            return
        try:
            result = self.callback(message)
            if result is None:
                return
            if inspect.iscoroutine(result):
                result = ensureDeferred(result)
        except Exception:
            self.channel.log.failure(
                "consumer {consumer_tag} callback failed", consumer_tag=self.consumer_tag
            )
            return
        if isinstance(result, Deferred):
            result.addErrback(
                lambda f: self.channel.log.failure(
                    "consumer {consumer_tag} callback failed", f, consumer_tag=self.consumer_tag
                )
            )

    def end(self, reason: BaseException) -> None:
        self._finish(reason)

    def cancel(self) -> Deferred[Any]:
        """
        Cancel the consumer (C{basic.cancel}).
        """
        return self.channel.basic_cancel(consumer_tag=self.consumer_tag)

    def __repr__(self) -> str:
        state = "running" if self.cancelled is None else "ended"
        return f"<Consumer {self.consumer_tag!r} on channel {self.channel.id} {state}>"


class Channel(typed.ChannelMethods):
    """
    One AMQP channel.  Get one from L{AMQPConnection.open_channel}.

    @ivar id: the channel id.
    @ivar connection: the L{AMQPConnection}.
    @ivar methods: the method classes of the connection's spec.
    @ivar consumers: consumer tag to L{Consumer}.
    @ivar closed: the exception calls fail with once the channel is closed,
        else C{None}.
    @ivar confirms: the publisher-confirm bookkeeping once
        L{confirm_select} was sent, else C{None}.
    @ivar flow_active: C{False} while the broker has paused this channel
        (C{channel.flow}).
    """

    log = Logger()

    def __init__(self, link: ChannelLink, channel_id: int, connection: AMQPConnection) -> None:
        self.id = channel_id
        self.connection = connection
        self._link = link
        self.methods = link.methods
        self.consumers: dict[str, Consumer] = {}
        self.closed: BaseException | None = None
        # the calls waiting for their reply, in send order: the core sends
        # one at a time and says which received method is a reply, so each
        # reply settles the oldest; see _call for the entries
        self._waiting: deque[_Waiting] = deque()
        # calls whose reply will never come because we closed the channel
        # while they waited; they fail when it has closed
        self._dropped: list[Deferred[Any]] = []
        self._close_waiters: list[Deferred[Any]] = []
        self._close_timer: IDelayedCall | None = None
        # the channel.close we sent, if we did
        self._close_sent: Method | None = None
        self._closed_waiters: list[Deferred[BaseException]] = []
        self._return_handlers: list[Callable[[Message], object]] = []
        self._listeners: list[MethodListener] = []
        self._unclaimed_handler: DeliveryCallback | None = None
        self.confirms: ConfirmTracker | None = None
        self.flow_active = True
        # publishes held while the connection is blocked, the transport's
        # buffer is full or flow is off; _holding is the one flag the publish
        # path checks (see _resume_publishing); the deque is made for the
        # first held publish (an empty one is some 600 bytes per channel)
        self._held: deque[tuple[Method, Properties, bytes, Deferred[None]]] | None = None
        self._holding = link.paused
        # method and property objects are immutable, so the publish path
        # reuses them: the basic.publish of each (exchange, routing key,
        # flags) seen lately
        self._publish_methods: dict[tuple[str, str, bool, bool], Method] = {}
        self._ack_class = self.methods.get("basic.ack")
        # counters, read through stats(); confirms are counted by the tracker
        self._published = self._published_bytes = 0
        self._delivered = self._delivered_bytes = 0
        self._returned = self._acked = self._nacked = self._rejected = 0

    def __repr__(self) -> str:
        state = "open" if self.is_open else ("closed" if self.closed else "opening")
        return f"<Channel {self.id} {state}>"

    @property
    def is_open(self) -> bool:
        """
        Whether the channel is open (the broker answered C{channel.open} and
        it has not closed since).
        """
        return self.closed is None and self._link.state(self.id) is ChannelState.OPEN

    # -- calls ---------------------------------------------------------------

    def call(
        self, method: Method, properties: Properties | None = None, body: bytes = b""
    ) -> Deferred[Any]:
        """
        Send any method on this channel.

        @return: a L{Deferred} firing with the reply when one is expected (a
            method object, or a L{Message} for a reply with content, as
            C{basic.get-ok}), else with C{None} once the frame is handed to
            the transport.  It fails with the channel's or connection's
            error if either is closed, or L{LocalProtocolError} if the
            method cannot be sent.
        """
        return self._call(method, properties, body)

    def _call(
        self,
        method: Method,
        properties: Properties | None = None,
        body: bytes = b"",
        then: _Then | None = None,
        arg: Any = None,
    ) -> Deferred[Any]:
        """
        L{call}, with the reply turned into the result by C{then(self,
        reply, arg)} before the L{Deferred} fires (an exception it raises
        fails the L{Deferred}; a method with no reply passes C{None}).  A
        queued call then costs one tuple, where C{call(...).addCallback(
        lambda reply: ...)} costs a callback entry and a closure: some 550
        bytes for each of 1,000 C{basic.consume} waiting on one channel.
        """
        if self.closed is not None:
            return fail(self.closed)
        if method.NAME == "channel.close":
            return self._send_close(method)
        if not method.expects_reply:
            try:
                self._link.send(self.id, method, properties, body)
            except LocalProtocolError as e:
                return fail(self.closed or self._link.refused(e))
            self._sent(method, body)
            return succeed(None if then is None else then(self, None, arg))
        # registered before sending: the reply may come while we send (a
        # transport that answers at once, as a test double does)
        d: Deferred[Any] = AsyncioDeferred(self._cancelled)
        entry = (d, then, arg)
        self._waiting.append(entry)
        try:
            self._link.send(self.id, method, properties, body)
        except LocalProtocolError as e:
            self._waiting.remove(entry)
            return fail(self.closed or self._link.refused(e))
        self._sent(method, body)
        return d

    def _sent(self, method: Method, body: bytes) -> None:
        name = method.NAME
        # confirm mode starts with the select, however it was called: the
        # broker numbers publishes from there
        if name == "confirm.select" and self.confirms is None and self.closed is None:
            # with no_wait there is no select-ok to wait for
            self.confirms = ConfirmTracker(started=bool(getattr(method, "no_wait", False)))
        elif name == "basic.ack":
            self._acked += 1
        elif name == "basic.nack":
            self._nacked += 1
        elif name == "basic.reject":
            self._rejected += 1
        elif name == "basic.publish":
            self._published += 1
            self._published_bytes += len(body)

    def make(self, name: str, **fields: Any) -> Method:
        """
        Build a method of the loaded spec from keyword arguments, keeping
        the fields the spec defines (see C{MethodSet.make}).

        @raise TypeError: a non-empty value for a field the spec lacks.
        @raise LocalProtocolError: the spec has no such method.
        """
        return self.methods.make(name, (), fields)

    def invoke(self, name: str, **fields: Any) -> Deferred[Any]:
        """
        Call a method of the loaded spec by its full name:
        C{ch.invoke("basic.nack", delivery_tag=1)} is C{ch.basic_nack(...)}.

        @return: as L{call}; it fails with L{LocalProtocolError} naming the
            spec when the spec lacks the method.
        @raise TypeError: a field the spec does not take, with a value.
        """
        return self._invoke(name, fields)

    def _invoke(
        self, name: str, fields: Mapping[str, Any], then: _Then | None = None, arg: Any = None
    ) -> Deferred[Any]:
        """
        L{invoke}, with the reply turned into the result as L{_call} does.
        """
        try:
            method = self.methods.make(name, (), fields)
        except LocalProtocolError as e:
            return fail(e)
        return self._call(method, then=then, arg=arg)

    if not TYPE_CHECKING:
        # the methods of other specs, untyped; to a type checker a channel has
        # the default spec's calls only, so that a misspelt one is an error

        def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
            if name.startswith("_"):
                raise AttributeError(name)
            cls = self.methods.get(spec_name(name))
            if cls is None:
                raise AttributeError(
                    f"{type(self).__name__} has no method {name!r}: "
                    f"{self.methods.spec.describe()} defines no {spec_name(name)}"
                )

            def invoke(**fields: Any) -> Deferred[Any]:
                if not cls.CONTENT:
                    return self.call(self.methods.make(cls, (), fields))
                # a content method (0-9's file.publish, say): body and properties
                body = _body_bytes(fields.pop("body", b""))
                given = fields.pop("properties", None)
                method = self.methods.make(cls, (), fields)
                if isinstance(given, Properties):
                    properties = given
                else:
                    properties = self.methods.properties_from(cls.CLASS_ID, given or {})
                return self.call(method, properties, body)

            invoke.__name__ = name
            invoke.__doc__ = method_doc(cls.SPEC)
            return invoke

    def channel_open(self) -> Deferred[Channel]:
        """
        Open the channel (C{channel.open}).

        @return: a L{Deferred} firing with this channel once the broker
            opened it.
        """
        return self._invoke("channel.open", {}, then=_the_channel)

    def channel_close(
        self, reply_code: int = 200, reply_text: str = "", class_id: int = 0, method_id: int = 0
    ) -> Deferred[typed.Channel.CloseOk | None]:
        """
        Close the channel (C{channel.close}).  Calls still waiting fail with
        L{errors.ChannelClosed}.

        @return: a L{Deferred} firing with C{Channel.CloseOk} once the
            broker agreed; with C{None} at once if the channel is already
            closed, or after the connection's C{close_timeout} if the broker
            never answers (the channel is then closed on our side).
        """
        if self.closed is not None:
            return succeed(None)
        return self.invoke(
            "channel.close",
            reply_code=reply_code,
            reply_text=truncate_shortstr(reply_text),
            class_id=class_id,
            method_id=method_id,
        )

    def close(self, reason: object = None) -> Deferred[Any]:
        """
        Close the channel; the same as L{channel_close}.
        """
        return self.channel_close(reply_text=str(reason) if reason else "")

    def when_closed(self) -> Deferred[BaseException]:
        """
        @return: a L{Deferred} firing, once the channel has closed, with
            why: the broker's error (L{errors.NotFound}, ...), the
            connection's, or a L{errors.ChannelClosed} with code 200 when
            the application closed it.
        """
        if self.closed is not None:
            return succeed(self.closed)
        d: Deferred[BaseException] = AsyncioDeferred()
        self._closed_waiters.append(d)
        return d

    @property
    def confirm_mode(self) -> bool:
        """
        Whether the channel is in confirm mode (L{confirm_select}).
        """
        return self.confirms is not None

    def stats(self) -> ChannelStats:
        """
        What this channel did so far (see L{ChannelStats}).

        @return: a snapshot of the channel's counters; it does not change
            afterwards.
        """
        confirms = self.confirms
        return ChannelStats(
            published=self._published,
            published_bytes=self._published_bytes,
            confirmed=confirms.acked if confirms is not None else 0,
            publish_nacked=confirms.nacked if confirms is not None else 0,
            returned=self._returned,
            delivered=self._delivered,
            delivered_bytes=self._delivered_bytes,
            acked=self._acked,
            nacked=self._nacked,
            rejected=self._rejected,
        )

    def add_listener(self, listener: MethodListener) -> None:
        """
        Call C{listener(method)} with each method the broker sends on this
        channel on its own (C{channel.flow}, C{basic.cancel}, C{basic.ack}
        and C{basic.nack} in confirm mode, ...), after the channel acted on
        it.  Replies to calls, deliveries and returns are not included.
        """
        self._listeners.append(listener)

    # -- publishing ----------------------------------------------------------

    def basic_publish(
        self,
        exchange: str = "",
        routing_key: str = "",
        body: bytes | str = b"",
        properties: Properties | Mapping[str, Any] | None = None,
        mandatory: bool = False,
        immediate: bool = False,
        **fields: NoReturn,
    ) -> Deferred[None]:
        """
        Publish a message.

        @param body: the body; a C{str} is sent as UTF-8.
        @param properties: a C{Basic.Properties}, or a mapping of property
            names in any spelling (C{content_type}, C{"delivery-mode"},
            0-8's C{"reply to"}, ...).
        @param fields: other fields of the loaded spec's C{basic.publish}
            (0-8's and 0-9's C{ticket}).
        @return: a L{Deferred} firing with C{None} once the message is queued
            for the socket, to be written in this reactor turn (in confirm
            mode: once the broker confirmed it), or failing with the
            channel's error.  While publishing is paused (the transport's
            buffer is full, the broker blocked the connection or stopped the
            channel's flow) the message is held and the L{Deferred} stays
            pending until it is written, in order.
        """
        if type(body) is not bytes:
            body = _body_bytes(body)
        link = self._link
        if properties is None:
            props = link.no_properties
        elif isinstance(properties, Properties):
            props = properties
        else:
            props = self.methods.properties_from(60, properties)
        key = (exchange, routing_key, mandatory, immediate)
        method = None if fields else self._publish_methods.get(key)
        if method is None:
            # basic.publish is in every spec: only wrong fields can fail
            method = self.methods.make(
                "basic.publish",
                (),
                {
                    "exchange": exchange,
                    "routing_key": routing_key,
                    "mandatory": mandatory,
                    "immediate": immediate,
                    **fields,
                },
            )
            if not fields:
                if len(self._publish_methods) >= _PUBLISH_METHOD_CACHE:
                    self._publish_methods.clear()
                self._publish_methods[key] = method
        if self._holding and self.closed is None:
            # a channel's first held publish is taken whatever its size
            if not link.hold(len(body), force=not self._held):
                return fail(
                    PublishBufferFull(
                        f"{link.held_bytes} bytes of publishes are held while publishing "
                        f"is paused (max_held_bytes={link.max_held_bytes}); wait for the "
                        "earlier publishes or connection.when_writable()"
                    )
                )
            d: Deferred[None] = AsyncioDeferred()
            if self._held is None:
                self._held = deque()
            self._held.append((method, props, body, d))
            return d
        return self._publish_now(method, props, body)

    def _publish_now(self, method: Method, props: Properties, body: bytes) -> Deferred[None]:
        if self.closed is not None:
            return fail(self.closed)
        link = self._link
        try:
            link.send_method(self.id, method, props, body)
        except LocalProtocolError as e:
            return fail(self.closed or self._link.refused(e))
        size = len(body)
        self._published += 1
        self._published_bytes += size
        link.flush(size=size, publish=True)
        if self.confirms is not None:
            return self.confirms.add()
        return succeed(None)

    def _pause_publishing(self) -> None:
        """
        The connection paused publishing: hold publishes from now on.
        """
        self._holding = True

    def _resume_publishing(self) -> None:
        """
        Publishing was resumed (by the transport, the broker's
        C{connection.unblocked} or C{channel.flow}): send the publishes held
        back, in order, while nothing pauses them.  The channel keeps
        holding until its backlog is empty, so a publish made meanwhile (by
        a callback of one released) queues behind the backlog.

        Each released publish settles the L{Deferred} it was held with
        directly (no second L{Deferred} chained to it).
        """
        link = self._link
        held = self._held
        while held:
            if link.paused or not self.flow_active:
                self._holding = True
                return
            method, props, body, d = held.popleft()
            link.release(len(body))
            if self.closed is not None:
                d.errback(self.closed)
                continue
            try:
                # written as publishes are (a few kilobytes per write): the
                # transport may pause us again after any write
                link.send(self.id, method, props, body, publish=True)
            except LocalProtocolError as e:
                d.errback(self.closed or link.refused(e))
                continue
            self._published += 1
            self._published_bytes += len(body)
            if self.confirms is not None:
                # the held Deferred itself waits for the broker's ack
                self.confirms.add(d)
            else:
                d.callback(None)
        self._holding = link.paused or not self.flow_active

    def confirm_select(self, no_wait: bool = False) -> Deferred[typed.Confirm.SelectOk | None]:
        """
        Put the channel in confirm mode (C{confirm.select}): from then on each
        L{basic_publish} fires when the broker has taken responsibility for
        the message (C{basic.ack}), or fails with L{PublishNacked}, with
        L{Unroutable} for a C{mandatory} message no queue took, or with the
        channel's or connection's error.

        @return: a L{Deferred} firing with C{Confirm.SelectOk} (C{None} with
            C{no_wait}); it fails with L{LocalProtocolError} when the loaded
            spec has no C{confirm} class (0-8, 0-9 and the plain 0-9-1 file).
        """
        return self.invoke("confirm.select", no_wait=no_wait)

    # -- consuming -----------------------------------------------------------

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> Deferred[None]:
        """
        Acknowledge a delivery (C{basic.ack}); C{multiple} acknowledges every
        delivery up to C{delivery_tag} as well.

        @return: a L{Deferred} firing with C{None} once the ack is handed to
            the transport, or failing with the channel's error.
        """
        if self.closed is not None or self._ack_class is None:
            return self.invoke("basic.ack", delivery_tag=delivery_tag, multiple=multiple)
        link = self._link
        try:
            link.send_ack(self.id, delivery_tag, multiple)
        except LocalProtocolError as e:
            return fail(self.closed or link.refused(e))
        link.flush()
        self._acked += 1
        return succeed(None)

    def basic_consume(
        self,
        queue: str = "",
        consumer_tag: str = "",
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        no_wait: bool = False,
        arguments: Mapping[str, Any] | None = None,
        callback: DeliveryCallback | None = None,
        **fields: NoReturn,
    ) -> Deferred[Consumer]:
        """
        Start a consumer.

        @param callback: called with each L{Message}; without one, messages
            go to the consumer's queue (and its async iterator).
        @param fields: other fields of the loaded spec's C{basic.consume}
            (0-9's C{filter}, 0-8's C{ticket}); the default spec has none, so
            a type checker refuses any.
        @return: a L{Deferred} firing with the L{Consumer} (which has the
            C{consumer_tag}, as txAMQP's reply did).
        """
        try:
            method = self.methods.make(
                "basic.consume",
                (),
                {
                    "queue": queue,
                    "consumer_tag": consumer_tag,
                    "no_local": no_local,
                    "no_ack": no_ack,
                    "exclusive": exclusive,
                    "no_wait": no_wait,
                    "arguments": dict(arguments or {}),
                    **fields,
                },
            )
        except LocalProtocolError as e:
            return fail(e)
        if not method.expects_reply:
            if not consumer_tag:
                return fail(
                    LocalProtocolError(
                        COMMAND_INVALID, "basic_consume with no_wait needs a consumer_tag", self.id
                    )
                )
            consumer = self._add_consumer(consumer_tag, callback)
            return self._call(method, then=_the_arg, arg=consumer)
        return self._call(method, then=Channel._consumer_started, arg=callback)

    def _consumer_started(self, ok: Method, callback: DeliveryCallback | None) -> Consumer:
        return self._add_consumer(ok.consumer_tag, callback)

    def _add_consumer(self, tag: str, callback: DeliveryCallback | None) -> Consumer:
        consumer = Consumer(self, tag, callback)
        self.consumers[tag] = consumer
        return consumer

    def basic_cancel(
        self, consumer_tag: str, no_wait: bool = False
    ) -> Deferred[typed.Basic.CancelOk | None]:
        """
        Cancel a consumer.  Its queue and iterator end.

        @return: a L{Deferred} firing with C{Basic.CancelOk} (C{None} with
            C{no_wait}).
        """
        fields = {"consumer_tag": consumer_tag, "no_wait": no_wait}
        return self._invoke("basic.cancel", fields, Channel._consumer_cancelled, consumer_tag)

    def _consumer_cancelled(self, reply: Any, consumer_tag: str) -> Any:
        consumer = self.consumers.pop(consumer_tag, None)
        if consumer is not None:
            consumer.end(ConsumerCancelled(f"consumer {consumer_tag} cancelled"))
        return reply

    def basic_get(
        self, queue: str = "", no_ack: bool = False, **fields: NoReturn
    ) -> Deferred[Message | None]:
        """
        Fetch one message (C{basic.get}).

        @return: a L{Deferred} firing with the L{Message}, or C{None} when the
            queue is empty.
        """
        return self._invoke(
            "basic.get", {"queue": queue, "no_ack": no_ack, **fields}, then=_message_or_none
        )

    def set_unclaimed_handler(self, handler: DeliveryCallback | None) -> None:
        """
        Call C{handler} with each delivery whose consumer tag the channel
        does not know (a consumer started with a bare C{call}, say), instead
        of logging it and leaving it unacknowledged.  C{None} goes back to
        logging.
        """
        self._unclaimed_handler = handler

    def add_return_handler(self, handler: Callable[[Message], object]) -> None:
        """
        Call C{handler} with each message the broker returns on this channel
        (C{basic.return}: a mandatory message that could not be routed).
        Without handlers (and outside confirm mode) returns are logged.
        """
        self._return_handlers.append(handler)

    # -- events from the connection ------------------------------------------

    def _reply_received(self, method: Method, properties: Properties | None, body: bytes) -> None:
        if not self._waiting:
            self.log.warn(
                "reply {method} on channel {channel} answers no call",
                method=method.NAME,
                channel=self.id,
            )
            return
        d, then, arg = self._waiting.popleft()
        reply: Any = method
        if properties is not None:
            self._delivered += 1
            self._delivered_bytes += len(body)
            reply = Message(self, method, properties, body)
        elif method.NAME == "channel.open-ok":
            self._link.count_opened()
        elif method.NAME == "confirm.select-ok" and self.confirms is not None:
            self.confirms.started = True
        if then is not None:
            try:
                reply = then(self, reply, arg)
            except Exception as e:
                d.errback(e)
                return
        d.callback(reply)

    def _method_received(self, method: Method) -> None:
        name = method.NAME
        if name in ("basic.ack", "basic.nack") and self.confirms is not None:
            tag, multiple = method.delivery_tag, method.multiple
            if name == "basic.ack":
                self.confirms.ack(tag, multiple)
            else:
                self.confirms.nack(tag, multiple)
        elif name == "channel.flow":
            self.flow_active = bool(method.active)
            self.log.info(
                "broker set flow on channel {channel} to {active}",
                channel=self.id,
                active=self.flow_active,
            )
            if self.flow_active:
                self._resume_publishing()
            else:
                self._holding = True
        elif name == "basic.cancel":
            tag = getattr(method, "consumer_tag", "")
            consumer = self.consumers.pop(tag, None)
            if consumer is not None:
                consumer.end(ConsumerCancelled(f"the broker cancelled consumer {tag}"))
            self.log.info("broker cancelled consumer {consumer_tag}", consumer_tag=tag)
        elif not self._listeners:
            self.log.info("unhandled {method} on channel {channel}", method=name, channel=self.id)
        for listener in list(self._listeners):
            self._link.call_hook(listener, method)

    def _content_received(self, method: Method, properties: Properties, body: bytes) -> None:
        message = Message(self, method, properties, body)
        if method.NAME == "basic.deliver":
            self._delivered += 1
            self._delivered_bytes += len(body)
            consumer = self.consumers.get(method.consumer_tag)
            if consumer is not None:
                consumer.deliver(message)
            elif self._unclaimed_handler is not None:
                self._link.call_hook(self._unclaimed_handler, message)
            else:
                self.log.warn(
                    "delivery {delivery_tag} for unknown consumer {consumer_tag} on channel "
                    "{channel} left unacknowledged",
                    delivery_tag=method.delivery_tag,
                    consumer_tag=method.consumer_tag,
                    channel=self.id,
                )
        elif method.NAME == "basic.return":
            self._returned += 1
            confirmed = self.confirms is not None and self.confirms.returned(message)
            if not confirmed and not self._return_handlers:
                self.log.info("unhandled basic.return on channel {channel}", channel=self.id)
            for handler in self._return_handlers:
                self._link.call_hook(handler, message)
        else:
            self.log.info(
                "unhandled {method} on channel {channel}", method=method.NAME, channel=self.id
            )

    def _send_close(self, method: Method) -> Deferred[Any]:
        d: Deferred[Any] = AsyncioDeferred()
        if self._close_waiters:
            self._close_waiters.append(d)
            return d
        self._close_waiters.append(d)
        self._close_sent = method
        # the core drops the calls that wait: no reply will come for them
        dropped = list(self._waiting)
        try:
            self._link.send(self.id, method)
        except LocalProtocolError as e:
            self._close_waiters.remove(d)
            return fail(self._link.refused(e))
        for waiting in dropped:
            if waiting in self._waiting:
                self._waiting.remove(waiting)
                self._dropped.append(waiting[0])
        if self.closed is None:
            self._close_timer = self._link.clock.callLater(
                self._link.close_timeout, self._close_timed_out
            )
        return d

    def _close_timed_out(self) -> None:
        """
        No close-ok came in time: treat the channel as closed.  Its id stays
        reserved until the broker answers (or the connection ends).
        """
        self._close_timer = None
        timeout = self._link.close_timeout
        self.log.warn(
            "no close-ok for channel {channel} within {timeout}s", channel=self.id, timeout=timeout
        )
        self._closed(ChannelClosed(reply_text=f"no close-ok from the broker within {timeout}s"))

    def _closed(self, error: BaseException | None, close_ok: Method | None = None) -> None:
        """
        The channel closed: fail everything outstanding with C{error} (or a
        plain L{ChannelClosed} when we closed it ourselves).
        """
        if self.closed is not None:
            return
        reason = error
        if reason is None:
            sent = self._close_sent
            text = "channel closed by the client"
            if sent is not None and sent.reply_text:
                text += f": {sent.reply_text}"
            reason = ChannelClosed(200, text, method=sent)
        self.closed = reason
        self._link.forget(self)
        dropped, self._dropped = self._dropped, []
        waiting, self._waiting = self._waiting, deque()
        for d in [*dropped, *(entry[0] for entry in waiting)]:
            if not d.called:
                d.errback(reason)
        for consumer in self.consumers.values():
            consumer.end(reason)
        self.consumers.clear()
        if self.confirms is not None:
            self.confirms.fail_all(reason)
        held, self._held = self._held or (), None
        for _, _, body, d in held:
            self._link.release(len(body))
            d.errback(reason)
        if self._close_timer is not None and self._close_timer.active():
            self._close_timer.cancel()
        self._close_timer = None
        # the broker may close the channel while we were closing it
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(close_ok)
        closed_waiters, self._closed_waiters = self._closed_waiters, []
        for dc in closed_waiters:
            dc.callback(reason)

    def _cancelled(self, d: Deferred[Any]) -> None:
        """
        A pending call was cancelled: close the channel, since its reply can
        no longer be matched.
        """
        self.channel_close(reply_text="a pending call was cancelled")
