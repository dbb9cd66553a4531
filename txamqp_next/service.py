# -*- test-case-name: tests.test_service -*-
"""
L{ConsumerService}: a long-running consumer that survives broker restarts
and fails over between brokers.

It is a L{Service}, so it runs under C{twistd} (see L{txamqp_next.tap}) or in
any L{twisted.application.service.MultiService}::

    service = ConsumerService(
        reactor, "amqp://app:secret@rabbit1,rabbit2/prod", "jobs", handle,
        queue_arguments={"x-queue-type": "quorum"}, max_redeliveries=5,
    )
    service.startService()

It consumes through a L{RecoveringConnection}: after a connection is lost
it reconnects (to the next broker of the list when there are several),
declares the queue again and consumes again, with the same handler.

For each message the handler is called with the L{Message}; it may return a
value, a L{Deferred} or a coroutine (one that awaits L{Deferred}s).  The
message is acknowledged once the handler has succeeded.  When it fails, one
log line (with the traceback) says what becomes of the message:

  - by default it is rejected: the broker dead-letters it when the queue has
    a dead-letter exchange, and drops it otherwise;
  - with C{max_redeliveries=n}, it goes back to the queue after
    C{redelivery_delay} seconds, at most C{n} times, and is then rejected
    (dead-lettered).  On a quorum queue the broker counts the deliveries (its
    C{x-delivery-count} header; the service declares the queue with
    C{x-delivery-limit}, so the broker dead-letters the message even if the
    consumer dies on it).  On other queues the service counts: it publishes
    a copy carrying the count in the C{x-txamqp-next-retries} header back to
    the queue and, once the broker confirmed the copy, acknowledges the
    message;
  - with C{requeue_on_failure=True} and no limit, it goes back to the queue
    after C{redelivery_delay} seconds, for ever.

Errors that retrying cannot mend stop the service with one log line:
refused credentials, a missing virtual host, a queue that exists with other
arguments (give the same C{queue_arguments}, or C{declare=False}), a missing
queue with C{declare=False}, refused permissions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from txamqp_next._deferred import AsyncioDeferred, fail, from_coroutine, succeed
from txamqp_next._params import ConnectionParameters
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import Broker, BrokerList, brokers_for
from txamqp_next.errors import AccessRefused, NotFound, PreconditionFailed
from txamqp_next.message import Message
from txamqp_next.recovery import (
    PERMANENT_ERRORS,
    ConnectionEvent,
    RecoveringChannel,
    RecoveringConnection,
    RecoveringConsumer,
)

__all__ = ["RETRIES_HEADER", "ConsumerService", "Handler"]

Handler = Callable[[Message], object]
"""
A message handler: called with each L{Message}; it may return a value, a
L{Deferred} or a coroutine (awaiting L{Deferred}s).  It succeeds when it
returns (or its result fires) without an exception.
"""

#: the header in which the service counts the failures of a message on
#: queues that do not count deliveries themselves
RETRIES_HEADER = "x-txamqp-next-retries"

#: errors of a service's own set-up that retrying cannot mend
SETUP_ERRORS: tuple[type[BaseException], ...] = (
    *PERMANENT_ERRORS,
    PreconditionFailed,
    NotFound,
    AccessRefused,
)


class _RecoveringService(Service):
    """
    What L{ConsumerService} and L{txamqp_next.thrift.ThriftServerService}
    share: a L{RecoveringConnection} made at each start, the service's own
    set-up once it is connected (L{_set_up}), one log line and a stop when
    an error cannot be mended, and a stop that winds the work down
    (L{_wind_down}) before closing the connection.

    @ivar connection: the L{RecoveringConnection} while the service runs.
    @ivar failed: the error that stopped the service, or C{None}.
    """

    log = Logger()

    #: what the service does, for log lines ("consumer of queue jobs")
    description = ""

    def __init__(
        self,
        reactor: Any,
        brokers: BrokerList,
        *,
        default_name: str,
        stop_timeout: float,
        retry_policy: Callable[[int], float] | None,
        connection_name: str | None,
        params: ConnectionParameters | None,
    ) -> None:
        """
        @param brokers: the brokers, tried in turn (see L{brokers_for}).
        @param default_name: the connection's name when neither
            C{connection_name} nor a broker's URI gives one.
        @raise ValueError: a bad URI or endpoint string.
        """
        self._reactor = reactor
        self._stop_timeout = stop_timeout
        self._retry_policy = retry_policy
        self.brokers: Sequence[Broker] = [
            Broker(
                broker.params.replace(
                    connection_name=connection_name or broker.params.connection_name or default_name
                ),
                broker.endpoint,
                broker.name,
            )
            for broker in brokers_for(reactor, brokers, params)
        ]
        self.connection: RecoveringConnection | None = None
        self.failed: BaseException | None = None
        self._stopping = False
        self._ready_waiters: list[Deferred[AMQPConnection]] = []
        self._ready = False

    @property
    def _broker(self) -> str:
        return ", ".join(broker.name for broker in self.brokers)

    # -- the Service interface -------------------------------------------------

    def startService(self) -> None:
        """
        Start connecting; the service's work starts once a connection is
        set up.
        """
        super().startService()  # type: ignore[no-untyped-call]
        self._stopping = False
        self.failed = None
        self._ready = False
        connection = self.connection = RecoveringConnection(
            self._reactor, list(self.brokers), retry_policy=self._retry_policy
        )
        connection.add_listener(self._event)
        from_coroutine(self._start(connection))

    def stopService(self) -> Deferred[None]:
        """
        Stop the work (L{_wind_down}), close the connection and stop
        reconnecting.

        @return: a L{Deferred} that fires with C{None} once stopped.  It
            does not fail.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        return from_coroutine(self._stop())

    def _when_ready(self, fail_after_failures: int | None) -> Deferred[AMQPConnection]:
        """
        @return: a L{Deferred} firing with the L{AMQPConnection} the service
            works on, once its set-up is done (at once if it is); failing
            with C{CancelledError} when the service stops first, with the
            error that stopped it, or with the last attempt's error after
            C{fail_after_failures} failed attempts.
        """
        connection = self.connection
        if self.failed is not None:
            return fail(self.failed)
        if connection is None or self._stopping:
            return fail(CancelledError())
        current = connection.connection
        if self._ready and current is not None and current.closed is None:
            return succeed(current)
        d: Deferred[AMQPConnection] = AsyncioDeferred()
        self._ready_waiters.append(d)
        if fail_after_failures is not None:
            connection.when_connected(fail_after_failures).addErrback(self._attempts_failed, d)
        return d

    def _attempts_failed(self, failure: Failure, waiter: Deferred[AMQPConnection]) -> None:
        if waiter in self._ready_waiters:
            self._ready_waiters.remove(waiter)
            waiter.errback(failure)

    def _fire_ready(self) -> None:
        connection = self.connection
        current = connection.connection if connection is not None else None
        if current is None:
            return
        self._ready = True
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(current)

    def _fail_ready(self, error: BaseException) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.errback(error)

    # -- the connection ----------------------------------------------------------

    async def _start(self, connection: RecoveringConnection) -> None:
        try:
            await connection.start()
            await self._set_up(connection)
        except Exception as e:
            if self._stopping or connection is not self.connection:
                return
            # the connection logged the errors that ended it
            self._give_up(e, logged=connection.failed is e)
            return
        if not self._stopping:
            self._fire_ready()

    def _event(self, event: ConnectionEvent) -> None:
        if event.kind == "lost":
            self._ready = False
        elif event.kind == "recovered" and not self._stopping:
            self._recovered()
        elif event.kind == "failed" and not self._stopping:
            self._give_up(event.reason or Exception("failed"), logged=True)

    def _recovered(self) -> None:
        """
        The connection was set up again, with the service's channels,
        declarations and consumers.
        """
        if self.connection is not None:
            self._log_ready(self.connection)
        self._fire_ready()

    def _log_ready(self, connection: RecoveringConnection) -> None:
        """
        Log that the service works on C{connection} (after its set-up, and
        after each recovery).
        """
        raise NotImplementedError()

    def _give_up(self, error: BaseException, logged: bool = False) -> None:
        """
        An error that retrying cannot mend: log it once and stop.
        """
        if self.failed is not None:
            return
        self.failed = error
        if not logged:
            self.log.error(
                "{description}: {error}; {hint}the service stops",
                description=self.description,
                error=error,
                hint=self._hint(error),
            )
        self._fail_ready(error)
        if self.running:
            self.stopService()

    def _hint(self, error: BaseException) -> str:
        """
        Advice for the log line of an error that stops the service.
        """
        return ""

    async def _set_up(self, connection: RecoveringConnection) -> None:
        """
        Set the service's work up on its connection (the first time; the
        connection restores it on the next ones).
        """
        raise NotImplementedError()

    async def _set_up_again(self) -> None:
        """
        Set the work up again on the same connection, after it ended on
        its own (the broker cancelled the consumer, or closed its channel);
        an error stops the service.
        """
        connection = self.connection
        if connection is None or self._stopping:
            return
        try:
            await self._set_up(connection)
        except Exception as e:
            if not self._stopping:
                self._give_up(e)
            return
        self._fire_ready()

    async def _wind_down(self) -> None:
        """
        Stop the service's work (within C{_stop_timeout}) before the
        connection is closed.  It must not fail.
        """
        raise NotImplementedError()

    async def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._fail_ready(self.failed or CancelledError())
        connection = self.connection
        await self._wind_down()
        if connection is not None:
            await connection.close()
        self._log_stopped()

    def _log_stopped(self) -> None:
        self.log.info("{description}: stopped", description=self.description)


class ConsumerService(_RecoveringService):
    """
    Consume one queue, calling a handler with each message, through a
    connection that heals itself: see the module's description.

    @ivar queue: the queue consumed.
    @ivar prefetch: how many unacknowledged messages the broker may send.
    @ivar queue_arguments: the queue's arguments, as declared.
    @ivar max_redeliveries: how often a message whose handler failed goes
        back to the queue before it is dead-lettered, or C{None}.
    @ivar redelivery_delay: seconds a failed message waits before it goes
        back to the queue.
    @ivar requeue_on_failure: whether a failed message goes back to the
        queue when there is no C{max_redeliveries}.
    """

    def __init__(
        self,
        reactor: Any,
        brokers: BrokerList,
        queue: str,
        handler: Handler,
        prefetch: int = 10,
        *,
        declare: bool = True,
        queue_arguments: Mapping[str, Any] | None = None,
        max_redeliveries: int | None = None,
        redelivery_delay: float = 1.0,
        requeue_on_failure: bool = False,
        stop_timeout: float = 30.0,
        retry_policy: Callable[[int], float] | None = None,
        connection_name: str | None = None,
        params: ConnectionParameters | None = None,
    ) -> None:
        """
        @param reactor: the reactor to connect with and time things by.
        @param brokers: the brokers, tried in turn: AMQP URIs (C{amqp://} or
            C{amqps://}, several hosts or URIs in one string if need be),
            Twisted endpoint strings or endpoints (see L{brokers_for}).
        @param queue: the queue to consume.
        @param handler: called with each L{Message} (see L{Handler}).
        @param prefetch: the C{basic.qos} prefetch count: how many messages
            may be unacknowledged (handled concurrently, or waiting to go
            back to the queue) at once; C{0} means no limit.
        @param declare: declare the queue (durable, with
            C{queue_arguments}) before consuming; when false, only check
            that it exists (a passive declare).
        @param queue_arguments: the queue's arguments
            (C{{"x-queue-type": "quorum"}}, C{{"x-dead-letter-exchange":
            "dlx"}}, ...), as it was or is to be declared.
        @param max_redeliveries: send a message whose handler failed back to
            the queue at most this many times, then reject it for good
            (dead-lettered, if the queue has a dead-letter exchange).
        @param redelivery_delay: seconds a failed message waits before going
            back to the queue (it holds a prefetch slot meanwhile).
        @param requeue_on_failure: without C{max_redeliveries}, send failed
            messages back to the queue for ever instead of rejecting them.
        @param stop_timeout: how long L{stopService} waits, in seconds, for
            the consumer to be cancelled and the handlers running to finish.
        @param retry_policy: seconds to wait before reconnection attempt
            C{n}; exponential back-off from one second up to a minute by
            default.
        @param connection_name: the name the broker shows for the
            connection; a URI's C{connection_name}, or C{txamqp_next
            consumer of <queue>} by default.
        @param params: the connection parameters for brokers given as
            endpoints (credentials, vhost, heartbeat, ...).
        @raise ValueError: a bad URI or endpoint string, or an option out of
            range.
        """
        if not 0 <= prefetch <= 0xFFFF:
            raise ValueError(f"prefetch must be between 0 and 65535, not {prefetch}")
        if max_redeliveries is not None and max_redeliveries < 0:
            raise ValueError(f"max_redeliveries must be 0 or more, not {max_redeliveries}")
        if redelivery_delay < 0:
            raise ValueError(f"redelivery_delay must be 0 or more, not {redelivery_delay}")
        super().__init__(
            reactor,
            brokers,
            default_name=f"txamqp_next consumer of {queue}",
            stop_timeout=stop_timeout,
            retry_policy=retry_policy,
            connection_name=connection_name,
            params=params,
        )
        self.queue = queue
        self.prefetch = prefetch
        self.queue_arguments: dict[str, Any] = dict(queue_arguments or {})
        self.max_redeliveries = max_redeliveries
        self.redelivery_delay = redelivery_delay
        self.requeue_on_failure = requeue_on_failure
        self.description = f"consumer of queue {queue}"
        self._handler = handler
        self._declare = declare
        self._channel: RecoveringChannel | None = None
        self._consumer: RecoveringConsumer | None = None
        self._handlers = _InFlight()
        self._delays: set[Deferred[None]] = set()

    def __repr__(self) -> str:
        return f"<ConsumerService queue={self.queue!r} at {self._broker}>"

    @property
    def quorum(self) -> bool:
        """
        Whether the queue is a quorum queue (by its C{queue_arguments}).
        """
        return self.queue_arguments.get("x-queue-type") == "quorum"

    def _declared_arguments(self) -> dict[str, Any]:
        arguments = dict(self.queue_arguments)
        if self.quorum and self.max_redeliveries is not None:
            arguments.setdefault("x-delivery-limit", self.max_redeliveries)
        return arguments

    # -- the Service interface -------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """
        Stop consuming (cancel the consumer), wait for the handlers still
        running to finish and their messages to be acknowledged or rejected
        (together at most C{stop_timeout} seconds), then close the
        connection.  Messages whose handler has not finished by then, or
        that wait to go back to the queue, are left unacknowledged: the
        broker redelivers them.

        @return: a L{Deferred} that fires with C{None} once the connection is
            closed and no reconnection is pending.  It does not fail.
        """
        return super().stopService()

    def when_consuming(self, fail_after_failures: int | None = None) -> Deferred[AMQPConnection]:
        """
        Wait for the service to consume.

        @param fail_after_failures: fail after this many failed connection
            attempts in a row; never when C{None}.
        @return: a L{Deferred} that fires with the L{AMQPConnection}
            consuming now (at once if there is one), or the next one.  It
            fails with C{CancelledError} when the service stops first, with
            the error that stopped the service, or with the last attempt's
            error after C{fail_after_failures} failed attempts.
        """
        return self._when_ready(fail_after_failures)

    # -- setting up ----------------------------------------------------------------

    async def _set_up(self, connection: RecoveringConnection) -> None:
        channel = self._channel = await connection.open_channel()
        if self._declare:
            await channel.queue_declare(
                queue=self.queue, durable=True, arguments=self._declared_arguments()
            )
        else:
            await channel.queue_declare(queue=self.queue, passive=True)
        await channel.basic_qos(prefetch_count=self.prefetch)
        if self.max_redeliveries is not None and not self.quorum:
            # failed messages go back as copies, acknowledged once confirmed
            await channel.confirm_select()
        if self._stopping:
            raise CancelledError()
        consumer = await channel.basic_consume(queue=self.queue, callback=self._deliver)
        self._consumer = consumer
        consumer.when_ended().addCallback(self._consumer_ended, consumer)
        self._log_ready(connection)

    def _log_ready(self, connection: RecoveringConnection) -> None:
        broker = connection.broker
        self.log.info(
            "consuming from queue {queue} at {broker} (prefetch {prefetch})",
            queue=self.queue,
            broker=broker.name if broker is not None else self._broker,
            prefetch=self.prefetch,
        )

    def _log_stopped(self) -> None:
        self.log.info("stopped consuming from queue {queue}", queue=self.queue)

    def _hint(self, error: BaseException) -> str:
        if isinstance(error, PreconditionFailed):
            return (
                "declare it with the same queue_arguments (or a policy), or use "
                "declare=False to consume it as it is; "
            )
        if isinstance(error, NotFound) and not self._declare:
            return "declare the queue first, or let the service declare it; "
        return ""

    def _consumer_ended(self, reason: BaseException, consumer: RecoveringConsumer) -> None:
        """
        The consumer ended for good: the broker cancelled it (its queue was
        deleted) or closed its channel.  Unless stopping, declare the queue
        and consume again on a new channel.
        """
        if self._stopping or consumer is not self._consumer or self.failed is not None:
            return
        self._consumer = None
        self._ready = False
        self.log.warn(
            "the consumer of queue {queue} ended ({reason}); consuming again",
            queue=self.queue,
            reason=reason,
        )
        from_coroutine(self._consume_again())

    async def _consume_again(self) -> None:
        old, self._channel = self._channel, None
        if old is not None and old.closed is None:
            await old.close()
        await deferLater(self._reactor, min(self.redelivery_delay, 1.0) or 0.1, lambda: None)
        await self._set_up_again()

    # -- messages ---------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        """
        The consumer's callback: handle C{message}, unless stopping (then it
        stays unacknowledged and the broker requeues it when the connection
        closes).
        """
        if self._stopping:
            return
        self._handlers.run(
            self._handle(message),
            lambda f: self.log.failure(
                "handling message {delivery_tag} from queue {queue} went wrong",
                f,
                queue=self.queue,
                delivery_tag=message.delivery_tag,
            ),
        )

    async def _handle(self, message: Message) -> None:
        try:
            result = self._handler(message)
            if isinstance(result, Deferred) or inspect.iscoroutine(result):
                await result
        except Exception:
            await self._failed(message, Failure())  # type: ignore[no-untyped-call]
        else:
            await self._settle(message, "ack", message.ack())

    def _retries(self, message: Message) -> int:
        """
        How often C{message} went back to the queue after a failure: the
        broker's count on a quorum queue, else the service's own.
        """
        count = message.headers.get("x-delivery-count" if self.quorum else RETRIES_HEADER, 0)
        try:
            return max(int(count), 0)
        except (TypeError, ValueError):
            return 0

    async def _failed(self, message: Message, failure: Failure) -> None:
        retries = self._retries(message)
        limit = self.max_redeliveries
        again = (limit is None and self.requeue_on_failure) or (
            limit is not None and retries < limit
        )
        if again:
            if limit is None:
                outcome = "it goes back to the queue in {delay}s"
            else:
                outcome = "it goes back to the queue in {delay}s (retry {retry} of {limit})"
        elif limit is not None:
            outcome = "it failed {tries} times and is rejected: {fate}"
        else:
            outcome = "it is rejected: {fate}"
        self.log.failure(
            "handler failed on message {delivery_tag} from queue {queue}; " + outcome,
            failure,
            level=LogLevel.error,
            queue=self.queue,
            delivery_tag=message.delivery_tag,
            delay=self.redelivery_delay,
            retry=retries + 1,
            limit=limit,
            tries=retries + 1,
            fate=self._fate(),
        )
        if not again:
            await self._settle(message, "reject", message.reject(requeue=False))
            return
        if self.redelivery_delay:
            delay = deferLater(self._reactor, self.redelivery_delay, lambda: None)
            self._delays.add(delay)
            try:
                await delay
            except CancelledError:
                # stopping: the message stays unacknowledged, for the broker
                # to redeliver
                return
            finally:
                self._delays.discard(delay)
        if limit is None or self.quorum:
            await self._settle(message, "requeue", message.reject(requeue=True))
        else:
            await self._send_back(message, retries + 1)

    def _fate(self) -> str:
        exchange = self.queue_arguments.get("x-dead-letter-exchange")
        if exchange is not None:
            return f"dead-lettered to exchange {exchange!r}"
        if self.queue_arguments or self._declare:
            return "dropped (the queue has no dead-letter exchange unless a policy gives one)"
        return "dead-lettered if the queue has a dead-letter exchange, else dropped"

    async def _send_back(self, message: Message, retries: int) -> None:
        """
        Publish a copy of C{message} to the queue with its count of
        retries, then acknowledge the message once the broker confirmed the
        copy.
        """
        channel = self._channel
        if channel is None:
            return
        properties = message.properties
        fields = {
            name: getattr(properties, name)
            for name in properties.field_names
            if getattr(properties, name) is not None
        }
        fields["headers"] = {**message.headers, RETRIES_HEADER: retries}
        try:
            await channel.basic_publish(
                routing_key=self.queue, body=message.body, properties=fields
            )
        except Exception as e:
            self.log.warn(
                "could not send message {delivery_tag} back to queue {queue} ({error}); "
                "the broker will redeliver it",
                delivery_tag=message.delivery_tag,
                queue=self.queue,
                error=e,
            )
            return
        await self._settle(message, "ack", message.ack())

    async def _settle(self, message: Message, action: str, sent: Deferred[Any]) -> None:
        try:
            await sent
        except Exception as e:
            self.log.warn(
                "could not {action} message {delivery_tag} from queue {queue} ({error}); "
                "the broker will redeliver it",
                action=action,
                queue=self.queue,
                delivery_tag=message.delivery_tag,
                error=e,
            )

    # -- stopping -----------------------------------------------------------------

    async def _wind_down(self) -> None:
        deadline = self._reactor.seconds() + self._stop_timeout
        for delay in list(self._delays):
            delay.cancel()
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer.cancelled is None:
            try:
                await consumer.cancel().addTimeout(self._stop_timeout, self._reactor)
            except Exception as e:
                self.log.warn(
                    "could not cancel the consumer of queue {queue}: {error}",
                    queue=self.queue,
                    error=e,
                )
        if self._handlers.count:
            self.log.info("waiting for {count} handlers to finish", count=self._handlers.count)
            left = max(deadline - self._reactor.seconds(), 0)
            try:
                await self._handlers.when_idle().addTimeout(left, self._reactor)
            except Exception:
                self.log.warn(
                    "stopping with {count} handlers still running; "
                    "the broker will redeliver their messages",
                    count=self._handlers.count,
                )


class _InFlight:
    """
    The work running (a handler, a Thrift call): each piece counted until
    its coroutine is done, an unexpected failure of it handed to a logger.

    @ivar count: how many pieces are running.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle_waiters: list[Deferred[None]] = []

    def begin(self) -> None:
        """
        A piece of work started; L{end} it once done.
        """
        self.count += 1

    def end(self, _: object = None) -> None:
        """
        A piece of work L{begin}-ed (or L{run}) is done (a callback: its
        argument is ignored).
        """
        self.count -= 1
        if not self.count:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                if not d.called:
                    d.callback(None)

    def run(self, work: Coroutine[Any, Any, None], on_failure: Callable[[Failure], None]) -> None:
        """
        Run C{work}, counting it until it is done.

        @param work: the coroutine to run (awaiting L{Deferred}s).
        @param on_failure: called with the failure if C{work} raises.
        """
        self.count += 1
        running = from_coroutine(work)
        running.addErrback(on_failure)
        running.addBoth(self.end)

    def when_idle(self) -> Deferred[None]:
        """
        @return: a L{Deferred} that fires with C{None} once nothing is
            running, at once if nothing is.  Cancelling it (a timeout) only
            stops the wait.
        """
        if not self.count:
            return succeed(None)
        d: Deferred[None] = AsyncioDeferred()
        self._idle_waiters.append(d)
        return d
