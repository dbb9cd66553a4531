# -*- test-case-name: tests.test_rpc -*-
"""
Request/reply over RabbitMQ's direct reply-to.

An L{RPCClient} consumes from the pseudo-queue C{amq.rabbitmq.reply-to} on
its channel (with C{no_ack}, as RabbitMQ requires), publishes each request
with C{reply_to} set to it and a fresh C{correlation_id}, and fires the
request's L{Deferred} with the reply carrying that id.  No reply queue is
declared.  The server side answers with L{respond}::

    rpc = await RPCClient(channel, timeout=5).start()
    reply = await rpc.call(routing_key="compute", body=b"2+2")

    # in the server's consumer callback:
    respond(request, b"4")
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txamqp_next._deferred import AsyncioDeferred, fail, succeed
from txamqp_next.channel import Channel, Consumer, ConsumerCancelled
from txamqp_next.confirms import Unroutable
from txamqp_next.errors import COMMAND_INVALID, AMQPError, LocalProtocolError
from txamqp_next.message import Message

__all__ = ["REPLY_TO", "RPCClient", "RPCTimeout", "respond"]

#: RabbitMQ's direct reply-to pseudo-queue.
REPLY_TO = "amq.rabbitmq.reply-to"


class RPCTimeout(AMQPError):
    """
    No reply came within the request's timeout.  A reply arriving later is
    dropped (and logged).

    @ivar correlation_id: the request's correlation id.
    """

    def __init__(self, correlation_id: str, timeout: float) -> None:
        super().__init__(f"no reply to request {correlation_id} within {timeout}s")
        self.correlation_id = correlation_id


class RPCClient:
    """
    Make requests and wait for their replies, over direct reply-to.

    @ivar channel: the L{Channel} requests go out on and replies come in on;
        it should serve nothing else that consumes from
        C{amq.rabbitmq.reply-to}.
    @ivar timeout: the default timeout of L{call}, in seconds; C{None} or
        C{0} waits for ever.
    @ivar closed: why the client stopped (its consumer ended), or C{None}.
    """

    log = Logger()

    def __init__(self, channel: Channel, timeout: float | None = 30.0) -> None:
        self.channel = channel
        self.timeout = timeout
        self.closed: BaseException | None = None
        self._consumer: Consumer | None = None
        self._pending: dict[str, tuple[Deferred[Message], IDelayedCall | None]] = {}

    def __len__(self) -> int:
        """
        How many requests wait for their reply.
        """
        return len(self._pending)

    def start(self) -> Deferred[RPCClient]:
        """
        Start consuming replies.

        @return: a L{Deferred} firing with this client once the broker
            accepted the consumer, or failing with the channel's error.
        """
        d = self.channel.basic_consume(queue=REPLY_TO, no_ack=True, callback=self._on_reply)

        def started(consumer: Consumer) -> RPCClient:
            self._consumer = consumer
            consumer.when_ended().addCallback(self._ended)
            self.channel.add_return_handler(self._on_return)
            return self

        return d.addCallback(started)

    def stop(self) -> Deferred[Any]:
        """
        Cancel the reply consumer; requests still waiting fail with
        L{ConsumerCancelled}.

        @return: a L{Deferred} firing once the broker cancelled it.
        """
        if self._consumer is None or self.closed is not None:
            self._ended(ConsumerCancelled("the RPC client was stopped"))
            return succeed(None)
        return self._consumer.cancel()

    def call(
        self,
        routing_key: str,
        body: bytes | str = b"",
        exchange: str = "",
        properties: Mapping[str, Any] | None = None,
        timeout: float | None = -1,
        mandatory: bool = True,
    ) -> Deferred[Message]:
        """
        Publish a request and wait for its reply.

        @param properties: more message properties (C{reply_to} and
            C{correlation_id} are set by the client).
        @param timeout: seconds to wait; the client's L{timeout} when
            omitted, C{None} or C{0} for ever.
        @param mandatory: publish as mandatory, so a request no queue takes
            fails at once with L{Unroutable} instead of timing out.
        @return: a L{Deferred} firing with the reply L{Message}.  It fails
            with L{RPCTimeout}, L{Unroutable}, the publish's error
            (C{PublishNacked} in confirm mode), the channel's or connection's
            error, or L{ConsumerCancelled} after L{stop}.  Cancelling it
            forgets the request (a late reply is dropped).
        @raise LocalProtocolError: (as a failed L{Deferred}) L{start} has not
            completed.
        """
        if self.closed is not None:
            return fail(self.closed)
        if self._consumer is None:
            return fail(
                LocalProtocolError(COMMAND_INVALID, "RPCClient.call before start() completed")
            )
        correlation_id = uuid.uuid4().hex
        props = dict(properties or {})
        props.update(reply_to=REPLY_TO, correlation_id=correlation_id)
        if timeout == -1:
            timeout = self.timeout
        d: Deferred[Message] = AsyncioDeferred(lambda _: self._forget(correlation_id))
        timer = None
        if timeout:
            timer = self.channel.connection.clock.callLater(
                timeout, self._timed_out, correlation_id, timeout
            )
        self._pending[correlation_id] = (d, timer)
        published = self.channel.basic_publish(
            exchange=exchange,
            routing_key=routing_key,
            body=body,
            properties=props,
            mandatory=mandatory,
        )
        published.addErrback(self._publish_failed, correlation_id)
        return d

    def _settle(self, correlation_id: str) -> Deferred[Message] | None:
        entry = self._pending.pop(correlation_id, None)
        if entry is None:
            return None
        d, timer = entry
        if timer is not None and timer.active():
            timer.cancel()
        return d

    def _forget(self, correlation_id: str) -> None:
        self._settle(correlation_id)

    def _on_reply(self, message: Message) -> None:
        correlation_id = getattr(message.properties, "correlation_id", None) or ""
        d = self._settle(correlation_id)
        if d is None:
            self.log.info(
                "dropped a reply for no waiting request: {correlation_id}",
                correlation_id=correlation_id,
            )
            return
        d.callback(message)

    def _on_return(self, message: Message) -> None:
        correlation_id = getattr(message.properties, "correlation_id", None) or ""
        d = self._settle(correlation_id)
        if d is not None:
            d.errback(Unroutable(message))

    def _publish_failed(self, failure: Failure, correlation_id: str) -> None:
        d = self._settle(correlation_id)
        if d is not None:
            d.errback(failure)

    def _timed_out(self, correlation_id: str, timeout: float) -> None:
        entry = self._pending.pop(correlation_id, None)
        if entry is not None:
            entry[0].errback(RPCTimeout(correlation_id, timeout))

    def _ended(self, reason: BaseException) -> None:
        if self.closed is None:
            self.closed = reason
        for correlation_id in list(self._pending):
            d = self._settle(correlation_id)
            if d is not None:
                d.errback(self.closed)


def respond(
    request: Message,
    body: bytes | str = b"",
    properties: Mapping[str, Any] | None = None,
) -> Deferred[None]:
    """
    Answer a request that came with C{reply_to} (from an L{RPCClient} or
    any direct reply-to client), on the channel it arrived on.

    @param properties: more message properties; C{correlation_id} is the
        request's.
    @return: the publish's L{Deferred}; it fails with L{LocalProtocolError}
        when the request has no C{reply_to}.
    """
    reply_to = getattr(request.properties, "reply_to", None)
    if not reply_to:
        return fail(LocalProtocolError(COMMAND_INVALID, "the request has no reply_to to answer"))
    props = dict(properties or {})
    correlation_id = getattr(request.properties, "correlation_id", None)
    if correlation_id is not None:
        props["correlation_id"] = correlation_id
    return request.channel.basic_publish(routing_key=reply_to, body=body, properties=props)
