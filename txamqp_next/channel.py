# -*- test-case-name: tests.test_protocol -*-
"""
L{Channel}: an AMQP channel of an L{AMQClient}, with a L{Deferred} for every
call.

Every method of the loaded spec is a method of the channel, with PEP 8
keyword arguments: C{ch.queue_declare(queue="q", durable=True)} returns a
L{Deferred} that fires with the reply (a C{Queue.DeclareOk}); methods that
expect no reply (and synchronous ones sent with C{no_wait=True}) fire with
C{None} once queued for the socket (written in the same reactor turn).

Calls on one channel are ordered; many may be outstanding.  A broker error
fails the call it answers and every later call on the channel with the
typed exception (L{errors.NotFound}, ...); other channels are unaffected.
Cancelling a pending call closes its channel.
"""

from __future__ import annotations

import functools
import inspect
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from txamqp_next._connection import truncate_shortstr
from txamqp_next._methods import Method, Properties
from txamqp_next.confirms import ConfirmTracker, PublishNacked, Unroutable
from txamqp_next.content import Content
from txamqp_next.errors import AMQPError, ChannelClosed, LocalProtocolError, PublishBufferFull
from txamqp_next.message import Message
from txamqp_next.queue import TimeoutDeferredQueue
from txamqp_next.spec import python_name, spec_name

if TYPE_CHECKING:
    from txamqp_next.protocol import AMQClient

__all__ = ["Channel", "Consumer", "ConsumerCancelled", "PublishNacked", "Unroutable"]

DeliveryCallback = Callable[[Message], object]

#: how many distinct (exchange, routing key, flags) a channel keeps a
#: ready C{basic.publish} for
_PUBLISH_METHOD_CACHE = 256


@functools.lru_cache(maxsize=512)
def _python_name(name: str) -> str:
    return python_name(name)


class ConsumerCancelled(AMQPError):
    """
    The consumer ended: the broker cancelled it (its queue was deleted, for
    instance) or the application did.
    """


class Consumer:
    """
    A consumer started by L{Channel.basic_consume}.

    Deliveries go to C{callback} when one was given, else into C{queue} (a
    L{TimeoutDeferredQueue}, txAMQP's C{client.queue(consumer_tag)}).
    Without a callback the consumer is also an async iterator:
    C{async for message in consumer: ...}; the loop ends when the
    consumer is cancelled.

    @ivar consumer_tag: the tag the broker knows it by.
    @ivar channel: its channel.
    """

    def __init__(
        self,
        channel: Channel,
        consumer_tag: str,
        queue: TimeoutDeferredQueue[Message],
        callback: DeliveryCallback | None,
    ) -> None:
        self.channel = channel
        self.consumer_tag = consumer_tag
        self.queue = queue
        self.callback = callback
        self.cancelled: BaseException | None = None
        self._end_waiters: list[Deferred[BaseException]] = []

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
        if self.cancelled is None:
            self.cancelled = reason
            self.queue.close(reason)
            waiters, self._end_waiters = self._end_waiters, []
            for d in waiters:
                d.callback(reason)

    def when_ended(self) -> Deferred[BaseException]:
        """
        @return: a L{Deferred} firing, once the consumer has ended, with why:
            L{ConsumerCancelled} (by the broker or the application) or the
            channel's or connection's error.
        """
        if self.cancelled is not None:
            return succeed(self.cancelled)
        d: Deferred[BaseException] = Deferred()
        self._end_waiters.append(d)
        return d

    def cancel(self) -> Deferred[Any]:
        """
        Cancel the consumer (C{basic.cancel}).
        """
        return self.channel.basic_cancel(consumer_tag=self.consumer_tag)

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        from txamqp_next.queue import Closed

        try:
            return await self.queue.get()
        except Closed:
            raise StopAsyncIteration from None


class Channel:
    """
    One AMQP channel.  Get one from L{AMQClient.channel} or
    L{AMQClient.open_channel}.

    @ivar id: the channel id.
    @ivar client: the L{AMQClient}.
    @ivar consumers: consumer tag to L{Consumer}.
    @ivar closed: the exception calls fail with once the channel is closed,
        else C{None}.
    """

    log = Logger()

    def __init__(self, client: AMQClient, channel_id: int) -> None:
        self.id = channel_id
        self.client = client
        self.methods = client.core.methods
        self.consumers: dict[str, Consumer] = {}
        self.closed: BaseException | None = None
        self.is_open = False
        # (method, Deferred) of the calls waiting for their reply, in order
        self._waiting: deque[tuple[Method, Deferred[Any]]] = deque()
        self._close_waiters: list[Deferred[Any]] = []
        self._close_timer: IDelayedCall | None = None
        self._return_handlers: list[Callable[[Message], object]] = []
        #: the publisher-confirm bookkeeping once confirm_select was sent
        self.confirms: ConfirmTracker | None = None
        #: False while the broker has paused this channel (channel.flow)
        self.flow_active = True
        # publishes held while the connection is blocked, the transport's
        # buffer is full or flow is off; _holding is the one flag the publish
        # path checks (see _update_holding)
        self._held: deque[tuple[Method, Properties, bytes, Deferred[None]]] = deque()
        self._holding = client._publishing_paused
        # method and property objects are immutable, so the publish path
        # reuses them: the basic.publish of each (exchange, routing key,
        # flags) seen lately, and the core's no_properties
        self._publish_methods: dict[tuple[str, str, bool, bool], Method] = {}

    def __repr__(self) -> str:
        state = "open" if self.is_open else ("closed" if self.closed else "opening")
        return f"<Channel {self.id} {state}>"

    # -- calls ---------------------------------------------------------------

    def call(
        self, method: Method, properties: Properties | None = None, body: bytes = b""
    ) -> Deferred[Any]:
        """
        Send any method on this channel.

        @return: a L{Deferred} firing with the reply method when one is
            expected, else with C{None} once the frame is handed to the
            transport.  It fails with the channel's or connection's error if
            either is closed, or L{LocalProtocolError} if the method cannot
            be sent.
        """
        if self.closed is not None:
            return fail(self.closed)
        if self.id == 0:
            return self.client._call0(method)
        if method.NAME == "channel.close":
            return self._send_close(method)
        expects = method.expects_reply
        try:
            self.client.core.send_method(self.id, method, properties, body)
        except LocalProtocolError as e:
            return fail(self.closed or e)
        self.client._flush()
        if not expects:
            return succeed(None)
        d: Deferred[Any] = Deferred(self._cancelled)
        self._waiting.append((method, d))
        return d

    def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            cls = self.methods[spec_name(name)]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no method {name!r}") from None

        def invoke(**fields: Any) -> Deferred[Any]:
            return self.call(cls(**fields))

        invoke.__name__ = name
        invoke.__doc__ = cls.__doc__
        return invoke

    def channel_open(self) -> Deferred[Channel]:
        """
        Open the channel (C{channel.open}).

        @return: a L{Deferred} firing with this channel once the broker
            opened it.
        """
        d = self.call(self.methods["channel.open"]())
        return d.addCallback(lambda _: self)

    def channel_close(
        self, reply_code: int = 200, reply_text: str = "", class_id: int = 0, method_id: int = 0
    ) -> Deferred[Any]:
        """
        Close the channel (C{channel.close}).  Calls still waiting fail with
        L{errors.ChannelClosed}.

        @return: a L{Deferred} firing with C{Channel.CloseOk} once the
            broker agreed; with C{None} at once if the channel is already
            closed, or after the client's C{close_timeout} if the broker
            never answers (the channel is then closed on our side).
        """
        if self.closed is not None:
            return succeed(None)
        return self.call(
            self.methods["channel.close"](
                reply_code=reply_code,
                reply_text=truncate_shortstr(reply_text),
                class_id=class_id,
                method_id=method_id,
            )
        )

    def close(self, reason: object = None) -> Deferred[Any]:
        """
        Close the channel; the same as L{channel_close}.
        """
        return self.channel_close(reply_text=str(reason) if reason else "")

    def basic_publish(
        self,
        exchange: str = "",
        routing_key: str = "",
        body: bytes | str = b"",
        properties: Properties | Mapping[str, Any] | None = None,
        mandatory: bool = False,
        immediate: bool = False,
        content: Content | None = None,
    ) -> Deferred[None]:
        """
        Publish a message.

        @param body: the body; a C{str} is sent as UTF-8.
        @param properties: a C{Basic.Properties}, or a mapping of property
            names (C{content_type}, C{delivery_mode}, C{headers}, ...).
        @param content: txAMQP's form: a L{Content} carrying body and
            properties (then C{body} and C{properties} must be left out).
        @return: a L{Deferred} firing with C{None} once the message is queued
            for the socket, to be written in this reactor turn (in confirm
            mode: once the broker confirmed it),
            or failing with the channel's error.  While publishing is paused
            (the transport's buffer is full, the broker blocked the
            connection or stopped the channel's flow) the message is held and
            the L{Deferred} stays pending until it is written, in order.
        """
        if content is not None:
            body = content.body_bytes()
            properties = content.properties
        elif isinstance(body, str):
            body = body.encode("utf-8")
        if properties is None:
            props = self.client.core.no_properties
        else:
            try:
                props = self._properties(properties)
            except TypeError as e:
                return fail(e)
        key = (exchange, routing_key, mandatory, immediate)
        method = self._publish_methods.get(key)
        if method is None:
            method = self.methods["basic.publish"](
                exchange=exchange, routing_key=routing_key, mandatory=mandatory, immediate=immediate
            )
            if len(self._publish_methods) >= _PUBLISH_METHOD_CACHE:
                self._publish_methods.clear()
            self._publish_methods[key] = method
        if self._holding and self.closed is None:
            client = self.client
            held_bytes = client._held_bytes + len(body)
            if held_bytes > client.max_held_bytes and self._held:
                return fail(
                    PublishBufferFull(
                        f"{client._held_bytes} bytes of publishes are held while publishing "
                        f"is paused (max_held_bytes={client.max_held_bytes}); wait for the "
                        "earlier publishes or client.when_writable()"
                    )
                )
            client._held_bytes = held_bytes
            d: Deferred[None] = Deferred()
            self._held.append((method, props, body, d))
            return d
        return self._publish_now(method, props, body)

    def _publish_now(self, method: Method, props: Properties, body: bytes) -> Deferred[None]:
        if self.closed is not None:
            return fail(self.closed)
        try:
            self.client.core.send_method(self.id, method, props, body)
        except LocalProtocolError as e:
            return fail(self.closed or e)
        self.client._flush(size=len(body), publish=True)
        if self.confirms is not None:
            return self.confirms.add()
        return succeed(None)

    def _update_holding(self) -> None:
        """
        Publishing was paused or resumed (by the transport, the broker's
        C{connection.blocked} or C{channel.flow}): send the publishes held
        back, in order, while nothing pauses them.  The channel keeps
        holding until its backlog is empty, so a publish made meanwhile (by
        a callback of one released) queues behind the backlog.

        Each released publish settles the L{Deferred} it was held with
        directly (no second L{Deferred} chained to it).
        """
        client = self.client
        held = self._held
        core = client.core
        while held:
            if client._publishing_paused or not self.flow_active:
                self._holding = True
                return
            method, props, body, d = held.popleft()
            client._held_bytes -= len(body)
            if self.closed is not None:
                d.errback(self.closed)
                continue
            try:
                core.send_method(self.id, method, props, body)
            except LocalProtocolError as e:
                d.errback(self.closed or e)
                continue
            # written as publishes are (a few kilobytes per write): the
            # transport may pause us again after any write
            client._flush(size=len(body), publish=True)
            if self.confirms is not None:
                # the held Deferred itself waits for the broker's ack
                self.confirms.add(d)
            else:
                d.callback(None)
        self._holding = client._publishing_paused or not self.flow_active

    def confirm_select(self, no_wait: bool = False) -> Deferred[Any]:
        """
        Put the channel in confirm mode (C{confirm.select}): from then on each
        L{basic_publish} fires when the broker has taken responsibility for
        the message (C{basic.ack}), or fails with L{PublishNacked}, with
        L{Unroutable} for a C{mandatory} message no queue took, or with the
        channel's or connection's error.

        @return: a L{Deferred} firing with C{Confirm.SelectOk} (C{None} with
            C{no_wait}).
        """
        d = self.call(self.methods["confirm.select"](no_wait=no_wait))
        if self.closed is None and self.confirms is None:
            self.confirms = ConfirmTracker()
        return d

    def _properties(self, properties: Properties | Mapping[str, Any] | None) -> Properties:
        cls = self.methods.properties[60]
        if properties is None:
            return cls()
        if isinstance(properties, Properties):
            return properties
        return cls(**{_python_name(k): v for k, v in properties.items()})

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> Deferred[None]:
        """
        Acknowledge a delivery (C{basic.ack}); C{multiple} acknowledges every
        delivery up to C{delivery_tag} as well.

        @return: a L{Deferred} firing with C{None} once the ack is handed to
            the transport, or failing with the channel's error.
        """
        if self.closed is not None or self.id == 0:
            return self.call(
                self.methods["basic.ack"](delivery_tag=delivery_tag, multiple=multiple)
            )
        cls = self._ack_class
        if cls is None:
            cls = self._ack_class = self.methods["basic.ack"]
        try:
            self.client.core.send_method(self.id, cls(delivery_tag=delivery_tag, multiple=multiple))
        except LocalProtocolError as e:
            return fail(self.closed or e)
        self.client._flush()
        return succeed(None)

    _ack_class: type[Method] | None = None

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
    ) -> Deferred[Consumer]:
        """
        Start a consumer.

        @param callback: called with each L{Message}; without one, messages
            go to the consumer's queue (and C{client.queue(consumer_tag)}).
        @return: a L{Deferred} firing with the L{Consumer} (which has the
            C{consumer_tag}, as txAMQP's reply did).
        """
        method = self.methods["basic.consume"](
            queue=queue,
            consumer_tag=consumer_tag,
            no_local=no_local,
            no_ack=no_ack,
            exclusive=exclusive,
            no_wait=no_wait,
            arguments=dict(arguments or {}),
        )
        if no_wait:
            if not consumer_tag:
                return fail(LocalProtocolError("basic_consume with no_wait needs a consumer_tag"))
            consumer = self._add_consumer(consumer_tag, callback)
            return self.call(method).addCallback(lambda _: consumer)
        d = self.call(method)
        return d.addCallback(lambda ok: self._add_consumer(ok.consumer_tag, callback))

    def _add_consumer(self, tag: str, callback: DeliveryCallback | None) -> Consumer:
        consumer = Consumer(self, tag, self.client._queue_for(tag), callback)
        self.consumers[tag] = consumer
        return consumer

    def basic_cancel(self, consumer_tag: str, no_wait: bool = False) -> Deferred[Any]:
        """
        Cancel a consumer.  Its queue and iterator end.

        @return: a L{Deferred} firing with C{Basic.CancelOk} (C{None} with
            C{no_wait}).
        """
        d = self.call(self.methods["basic.cancel"](consumer_tag=consumer_tag, no_wait=no_wait))

        def done(result: Any) -> Any:
            consumer = self.consumers.pop(consumer_tag, None)
            if consumer is not None:
                consumer.end(ConsumerCancelled(f"consumer {consumer_tag} cancelled"))
            return result

        return d.addCallback(done)

    def basic_get(self, queue: str = "", no_ack: bool = False) -> Deferred[Message | None]:
        """
        Fetch one message (C{basic.get}).

        @return: a L{Deferred} firing with the L{Message}, or C{None} when the
            queue is empty.
        """
        d = self.call(self.methods["basic.get"](queue=queue, no_ack=no_ack))
        return d.addCallback(lambda reply: reply if isinstance(reply, Message) else None)

    def add_return_handler(self, handler: Callable[[Message], object]) -> None:
        """
        Call C{handler} with each message the broker returns on this channel
        (C{basic.return}: a mandatory message that could not be routed).
        Without handlers returns go to C{client.basic_return_queue}.
        """
        self._return_handlers.append(handler)

    # -- events from the client ----------------------------------------------

    def _method_received(self, method: Method) -> None:
        if self._waiting and type(method) in self._waiting[0][0].RESPONSES:
            _, d = self._waiting.popleft()
            if method.NAME == "channel.open-ok":
                self.is_open = True
            d.callback(method)
            return
        name = method.NAME
        if name == "channel.close-ok":
            # mark the channel closed before its close Deferred fires, so
            # the code that runs on it sees a closed channel
            self._closed(None, method)
        elif name in ("basic.ack", "basic.nack") and self.confirms is not None:
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
            self._update_holding()
        elif name == "basic.cancel":
            tag = getattr(method, "consumer_tag", "")
            consumer = self.consumers.pop(tag, None)
            if consumer is not None:
                consumer.end(ConsumerCancelled(f"the broker cancelled consumer {tag}"))
            self.log.info("broker cancelled consumer {consumer_tag}", consumer_tag=tag)
        else:
            self.client._unhandled(self, method)

    def _content_received(self, method: Method, properties: Properties, body: bytes) -> None:
        message = Message(self, method, properties, body)
        name = method.NAME
        if name == "basic.deliver":
            consumer = self.consumers.get(method.consumer_tag)
            if consumer is not None:
                consumer.deliver(message)
            else:
                self.client._deliver_unclaimed(self, message)
        elif name == "basic.return" and self.confirms is not None:
            self.confirms.returned(message)
        elif name == "basic.return":
            if self._return_handlers:
                for handler in self._return_handlers:
                    self.client._call_hook(handler, message)
            else:
                self.client._returned(self, message)
        elif self._waiting and type(method) in self._waiting[0][0].RESPONSES:
            _, d = self._waiting.popleft()
            d.callback(message)
        else:
            self.client._unhandled(self, method)

    def _send_close(self, method: Method) -> Deferred[Any]:
        if not self._close_waiters:
            try:
                self.client.core.send_method(self.id, method)
            except LocalProtocolError as e:
                return fail(e)
            self.client._flush()
            self._close_timer = self.client.clock.callLater(
                self.client.close_timeout, self._close_timed_out
            )
        d: Deferred[Any] = Deferred()
        self._close_waiters.append(d)
        return d

    def _close_timed_out(self) -> None:
        """
        No close-ok came in time: treat the channel as closed.  Its id stays
        reserved until the broker answers (or the connection ends).
        """
        self._close_timer = None
        timeout = self.client.close_timeout
        self.log.warn(
            "no close-ok for channel {channel} within {timeout}s", channel=self.id, timeout=timeout
        )
        self._closed(ChannelClosed(reply_text=f"no close-ok from the broker within {timeout}s"))

    def _finish_close(self, close_ok: Method | None) -> None:
        if self._close_timer is not None and self._close_timer.active():
            self._close_timer.cancel()
        self._close_timer = None
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(close_ok)

    def _closed(self, error: BaseException | None, close_ok: Method | None = None) -> None:
        """
        The channel closed: fail everything outstanding with C{error} (or a
        plain L{ChannelClosed} when we closed it ourselves).
        """
        if self.closed is not None:
            return
        self.is_open = False
        reason = error if error is not None else ChannelClosed(200, "channel closed by the client")
        self.closed = reason
        waiting, self._waiting = self._waiting, deque()
        for _, d in waiting:
            if not d.called:
                d.errback(reason)
        for consumer in self.consumers.values():
            consumer.end(reason)
        self.consumers.clear()
        if self.confirms is not None:
            self.confirms.fail_all(reason)
        held, self._held = self._held, deque()
        for _, _, body, d in held:
            self.client._held_bytes -= len(body)
            d.errback(reason)
        # the broker may close the channel while we were closing it
        self._finish_close(close_ok)

    def _cancelled(self, d: Deferred[Any]) -> None:
        """
        A pending call was cancelled: close the channel, since its reply can
        no longer be matched.
        """
        self.channel_close(reply_text="a pending call was cancelled")
