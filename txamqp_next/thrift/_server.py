# -*- test-case-name: tests.test_thrift -*-
"""
The server side of Thrift over AMQP: a L{ThriftServer} consumes a service's
queue, runs a Thrift processor on each call and publishes the reply to the
responses exchange with the call's C{reply_to} as routing key (txAMQP's
wire format).  A call is acknowledged once its reply has been confirmed by
the broker, so a server that dies mid-call leaves it to be redelivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txamqp_next._deferred import fail, from_coroutine, may_fail, succeed
from txamqp_next.channel import Consumer
from txamqp_next.confirms import Unroutable
from txamqp_next.message import Message
from txamqp_next.recovery import RecoveringConsumer
from txamqp_next.service import _InFlight
from txamqp_next.thrift._client import (
    DEFAULT_EXCHANGE,
    DEFAULT_RESPONSES_EXCHANGE,
    Amqp,
    AnyChannel,
    binary_protocol,
    declare_exchange,
    read_header,
    reading_protocol,
    return_router,
    set_up_channel,
)
from txamqp_next.thrift._errors import ThriftTransportError

__all__ = ["ThriftServer", "serve"]


class _ReplyTransport:
    """
    The Thrift transport a processor writes one reply to; C{flush}
    publishes what was written.

    @ivar reply_to: where the replies go (the call's C{reply_to}).
    @ivar sent: the L{Deferred}s of the replies published.
    """

    def __init__(self, server: ThriftServer, reply_to: str | None) -> None:
        self._server = server
        self.reply_to = reply_to
        self._buffer: list[bytes] = []
        self.sent: list[Deferred[None]] = []

    def isOpen(self) -> bool:
        return True

    def open(self) -> None:
        """
        Nothing to open.
        """

    def close(self) -> None:
        """
        Nothing to close.
        """

    def read(self, sz: int) -> bytes:
        raise ThriftTransportError("a reply transport cannot be read from")

    def write(self, buf: bytes) -> None:
        self._buffer.append(buf)

    def flush(self) -> None:
        body = b"".join(self._buffer)
        self._buffer.clear()
        if body:
            self.sent.append(self._server._publish_reply(self.reply_to, body))


class ThriftServer:
    """
    Serves one Thrift service from one queue.  Make one with L{serve}.

    Calls are processed as they arrive, up to the channel's prefetch count
    at once.  A call whose processor fails (its body is not a Thrift
    message, say) is logged and rejected without requeueing; a handler
    that raises an exception the IDL does not declare is answered with a
    C{TApplicationException} by the generated processor.  A reply the
    broker returns (its client has gone) is logged and dropped.

    @ivar channel: the L{Channel} the server consumes on.
    @ivar service_name: the routing key the queue is bound with.
    @ivar queue: the queue consumed.
    @ivar responses_exchange: where replies are published.
    """

    log = Logger()

    def __init__(
        self,
        channel: AnyChannel,
        service_name: str,
        processor: Any,
        queue: str,
        *,
        responses_exchange: str = DEFAULT_RESPONSES_EXCHANGE,
        iprot_factory: Any = None,
        oprot_factory: Any = None,
        owns_channel: bool = False,
    ) -> None:
        self.channel = channel
        self.service_name = service_name
        self.processor = processor
        self.queue = queue
        self.responses_exchange = responses_exchange
        self._calls = _InFlight()
        self._iprot_factory = iprot_factory or binary_protocol()
        self._oprot_factory = oprot_factory or self._iprot_factory
        self._owns_channel = owns_channel
        self._consumer: Consumer | RecoveringConsumer | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<ThriftServer {self.service_name!r} on queue {self.queue!r}>"

    @property
    def in_flight(self) -> int:
        """
        How many calls are being processed.
        """
        return self._calls.count

    def start(self) -> Deferred[ThriftServer]:
        """
        Start consuming.

        @return: a L{Deferred} firing with this server once consuming, or
            failing with the channel's error.
        """
        if not self.channel.confirm_mode:
            # not in confirm mode: returned replies come to return handlers
            return_router(self.channel).reply_exchanges.add(self.responses_exchange)
        consuming = self.channel.basic_consume(queue=self.queue, callback=self._request)

        def started(consumer: Consumer | RecoveringConsumer) -> ThriftServer:
            self._consumer = consumer
            return self

        return consuming.addCallback(started)

    def when_ended(self) -> Deferred[BaseException]:
        """
        @return: a L{Deferred} firing, once the server stopped consuming,
            with why (L{txamqp_next.ConsumerCancelled}, or the channel's or
            connection's error).
        """
        assert self._consumer is not None, "the server was not started"
        return self._consumer.when_ended()

    # -- calls -------------------------------------------------------------------

    def _request(self, message: Message) -> None:
        """
        Handle one call, as a chain of callbacks (a call's steps mostly run
        at once: a coroutine per call cost more than the steps themselves):
        run the processor, which publishes the reply; wait for the broker
        to confirm the reply (in confirm mode); acknowledge the call.  It
        counts as in flight until its ack or reject is settled.
        """
        if self._stopping:
            return
        reply_to: str | None = getattr(message.properties, "reply_to", None)
        transport = _ReplyTransport(self, reply_to)
        self._calls.begin()
        try:
            iprot = reading_protocol(self._iprot_factory, message.body)
            oprot = self._oprot_factory.getProtocol(transport)
            processed = maybeDeferred(self.processor.process, iprot, oprot)
        except Exception as e:
            processed = fail(e)
        processed.addCallbacks(
            self._processed,
            self._processor_failed,
            callbackArgs=(message, transport, 0),
            errbackArgs=(message,),
        )
        processed.addErrback(self._went_wrong, message)
        processed.addBoth(self._calls.end)

    def _processed(
        self, _: object, message: Message, transport: _ReplyTransport, first: int
    ) -> Deferred[None] | None:
        """
        The processor is done: once every reply from C{transport.sent[first]}
        on is settled, acknowledge the call.
        """
        sent = transport.sent
        for index in range(first, len(sent)):
            published = sent[index]
            if may_fail(published):
                # in flight (confirm mode) or failed: go on once settled
                return published.addCallbacks(
                    self._processed,
                    self._reply_failed,
                    callbackArgs=(message, transport, index + 1),
                    errbackArgs=(message, transport, index + 1),
                )
        acked = message.ack()
        if may_fail(acked):
            return acked.addErrback(self._settle_failed, "ack", message)
        return None

    def _reply_failed(
        self, failure: Failure, message: Message, transport: _ReplyTransport, next_reply: int
    ) -> Deferred[None] | Failure | None:
        if isinstance(failure.value, Unroutable):
            self.log.warn(
                "the reply to {reply_to} was returned: its client has gone",
                reply_to=transport.reply_to,
            )
            return self._processed(None, message, transport, next_reply)
        if not isinstance(failure.value, Exception):
            return failure
        self.log.warn(
            "could not publish the reply to {reply_to} ({error}); the call stays unacknowledged",
            reply_to=transport.reply_to,
            error=failure.value,
        )
        return None

    def _processor_failed(
        self, failure: Failure, message: Message
    ) -> Deferred[None] | Failure | None:
        if not isinstance(failure.value, Exception):
            return failure
        self.log.failure(
            "the Thrift processor failed on call {delivery_tag} ({size} bytes) from "
            "queue {queue}; rejecting it",
            failure,
            delivery_tag=message.delivery_tag,
            size=len(message.body),
            queue=self.queue,
        )
        rejected = message.reject(requeue=False)
        if may_fail(rejected):
            return rejected.addErrback(self._settle_failed, "reject", message)
        return None

    def _settle_failed(self, failure: Failure, action: str, message: Message) -> None:
        self.log.warn(
            "could not {action} call {delivery_tag} on {queue} ({error})",
            action=action,
            delivery_tag=message.delivery_tag,
            queue=self.queue,
            error=failure.value,
        )

    def _went_wrong(self, failure: Failure, message: Message) -> None:
        self.log.failure(
            "handling Thrift call {delivery_tag} on {queue} went wrong",
            failure,
            delivery_tag=message.delivery_tag,
            queue=self.queue,
        )

    def _publish_reply(self, reply_to: str | None, body: bytes) -> Deferred[None]:
        if not reply_to:
            try:
                method, _, seqid = read_header(body, self._oprot_factory)
            except ThriftTransportError:
                method, seqid = "?", -1
            self.log.warn(
                "dropping the reply to {method} (seqid {seqid}): its call had no reply-to",
                method=method,
                seqid=seqid,
            )
            return succeed(None)
        return self.channel.basic_publish(
            exchange=self.responses_exchange, routing_key=reply_to, body=body, mandatory=True
        )

    # -- stopping ------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> Deferred[None]:
        """
        Stop: cancel the consumer, wait (at most C{timeout} seconds) for the
        calls being processed to be answered and acknowledged, then close
        the channel if the server opened it.  Calls not finished by then
        stay unacknowledged, for the broker to redeliver.

        @return: a L{Deferred} firing with C{None} once stopped.  It does
            not fail.
        """
        return from_coroutine(self._stop(timeout))

    async def _stop(self, timeout: float) -> None:
        self._stopping = True
        clock = self.channel.connection.clock
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None and consumer.cancelled is None:
                await consumer.cancel().addTimeout(timeout, clock)
        except Exception as e:
            self.log.info("cancelling the consumer of {queue}: {error}", queue=self.queue, error=e)
        if self.in_flight:
            try:
                await self._calls.when_idle().addTimeout(timeout, clock)
            except Exception:
                self.log.warn("stopping with {count} Thrift calls unfinished", count=self.in_flight)
        if self._owns_channel and self.channel.closed is None:
            try:
                await self.channel.close()
            except Exception as e:
                self.log.info("closing the channel of {queue}: {error}", queue=self.queue, error=e)


def serve(
    amqp: Amqp,
    service_name: str,
    processor: Any,
    *,
    exchange: str = DEFAULT_EXCHANGE,
    responses_exchange: str = DEFAULT_RESPONSES_EXCHANGE,
    queue: str | None = None,
    prefetch: int = 100,
    declare: bool = True,
    durable: bool = False,
    queue_arguments: Mapping[str, Any] | None = None,
    declare_responses_exchange: bool = True,
    confirm: bool | None = None,
    protocol_factory: Any = None,
    iprot_factory: Any = None,
    oprot_factory: Any = None,
) -> Deferred[ThriftServer]:
    """
    Serve a Thrift service::

        server = await serve(amqp, "calculator", Calculator.Processor(Handler()))
        ...
        await server.stop()

    @param amqp: an open L{AMQPConnection} or L{RecoveringConnection} (the
        server opens a channel of its own and closes it in
        L{ThriftServer.stop}) or an open L{Channel} or L{RecoveringChannel}
        (which the server puts in confirm mode, see C{confirm}).  On a
        recovering connection the server serves again after each
        reconnection.
    @param service_name: the routing key clients call the service by.
    @param processor: a Thrift processor (C{Service.Processor(handler)}
        from C{thrift --gen py:twisted}): its C{process(iprot, oprot)} may
        return a L{Deferred}.
    @param exchange: the exchange clients publish calls to.
    @param responses_exchange: the exchange replies are published to, with
        the call's C{reply_to} as routing key.
    @param queue: the queue to consume; the service name by default.
        Servers sharing a queue share the calls.
    @param prefetch: how many calls may be processed at once (C{basic.qos}).
    @param declare: declare C{exchange} (direct, not durable), the queue
        and its binding.
    @param durable: declare the queue durable, so that calls wait in it
        while no server runs and a call whose server died goes to the next
        server; by default it is auto-deleted with its last consumer, as
        txAMQP's servers declare it (and a call in flight when the last
        server dies is lost).
    @param queue_arguments: the queue's arguments
        (C{{"x-queue-type": "quorum"}} for calls that survive the loss of
        a cluster node; a quorum queue must be durable).
    @param declare_responses_exchange: also declare C{responses_exchange}
        (direct, not durable), so a reply cannot be published to a missing
        exchange.
    @param confirm: put the channel in confirm mode, so that a call is
        acknowledged only once the broker has its reply; when false, once
        the reply is handed to the transport.  By default, confirm mode is
        used when the loaded spec has it (0-8, 0-9 and the plain 0-9-1 file
        have no C{confirm} class).
    @param protocol_factory: the Thrift protocol factory
        (L{binary_protocol} by default); C{iprot_factory} and
        C{oprot_factory} set each direction apart.
    @return: a L{Deferred} firing with the started L{ThriftServer}, or
        failing with the broker's error (for instance
        L{txamqp_next.errors.PreconditionFailed} when the queue exists with
        other settings).
    @raise ValueError: C{prefetch} is out of range.
    """
    if not 0 <= prefetch <= 0xFFFF:
        raise ValueError(f"prefetch must be between 0 and 65535, not {prefetch}")
    return from_coroutine(
        _serve(
            amqp,
            service_name,
            processor,
            exchange=exchange,
            responses_exchange=responses_exchange,
            queue=queue or service_name,
            prefetch=prefetch,
            declare=declare,
            durable=durable,
            queue_arguments=dict(queue_arguments or {}),
            declare_responses_exchange=declare_responses_exchange,
            confirm=confirm,
            iprot_factory=iprot_factory or protocol_factory,
            oprot_factory=oprot_factory or protocol_factory,
        )
    )


async def _serve(
    amqp: Amqp,
    service_name: str,
    processor: Any,
    *,
    exchange: str,
    responses_exchange: str,
    queue: str,
    prefetch: int,
    declare: bool,
    durable: bool,
    queue_arguments: dict[str, Any],
    declare_responses_exchange: bool,
    confirm: bool | None,
    iprot_factory: Any,
    oprot_factory: Any,
) -> ThriftServer:
    async with set_up_channel(amqp) as (channel, owns):
        if declare:
            await declare_exchange(channel, exchange)
            if durable:
                await channel.queue_declare(queue=queue, durable=True, arguments=queue_arguments)
            else:
                await channel.queue_declare(
                    queue=queue, auto_delete=True, arguments=queue_arguments
                )
            await channel.queue_bind(queue=queue, exchange=exchange, routing_key=service_name)
        if declare_responses_exchange:
            await declare_exchange(channel, responses_exchange)
        await channel.basic_qos(prefetch_count=prefetch)
        if confirm is None:
            confirm = channel.methods.get("confirm.select") is not None
        if confirm and not channel.confirm_mode:
            await channel.confirm_select()
        server = ThriftServer(
            channel,
            service_name,
            processor,
            queue,
            responses_exchange=responses_exchange,
            iprot_factory=iprot_factory,
            oprot_factory=oprot_factory,
            owns_channel=owns,
        )
        return await server.start()
