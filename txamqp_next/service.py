# -*- test-case-name: tests.test_service -*-
"""
L{ConsumerService}: a long-running consumer that survives broker restarts.

It is a L{Service}, so it runs under C{twistd} (see L{txamqp_next.tap}) or in
any L{twisted.application.service.MultiService}::

    service = ConsumerService(reactor, "amqp://guest:guest@127.0.0.1/", "jobs", handle)
    service.startService()

Connections come from a L{ClientService} with an exponential back-off.  Each
new connection is prepared (its C{prepareConnection}) before it counts as
connected: the AMQP handshake, a channel, the queue declared, C{basic.qos}
and C{basic.consume}.  A connection that fails any of these is closed and
the attempt retried.

For each message the handler is called with the L{Message}; it may return a
value, a L{Deferred} or a coroutine (one that awaits L{Deferred}s).  The
message is acknowledged once the handler has succeeded; if it fails, the
traceback is logged and the message rejected (dead-lettered, or dropped when
the queue has no dead-letter exchange), or requeued when the service was
made with C{requeue_on_failure=True}.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp_next.channel import Consumer
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import endpoint_and_factory, parse_url
from txamqp_next.message import Message

__all__ = ["ConsumerService", "Handler"]

Handler = Callable[[Message], object]
"""
A message handler: called with each L{Message}; it may return a value, a
L{Deferred} or a coroutine (awaiting L{Deferred}s).  It succeeds when it returns (or its result
fires) without an exception.
"""


class _Rejected(Exception):
    """
    A connection came up while the service was stopping.
    """


class _ReconnectingService(Service):
    """
    The mechanism L{ConsumerService} and
    L{txamqp_next.thrift.ThriftServerService} share: a L{ClientService}
    connecting with back-off, each connection set up (L{_set_up}) before it
    counts as connected and closed when that fails or times out, and a stop
    that winds the work down (L{_wind_down}) before closing the connection.

    A subclass gives L{_set_up}, L{_wind_down} and L{_log_fields}, and the
    messages L{_cannot_format} and L{_stopped_format}, formatted with
    L{_log_fields} (and C{broker} and C{error} for L{_cannot_format}).

    @ivar _client: the connection set up last, until the service stops.
    @ivar _stopping: whether the service is stopping.
    """

    log = Logger()

    _cannot_format = ""
    _stopped_format = ""

    def __init__(
        self,
        reactor: Any,
        url: str,
        *,
        default_name: str,
        stop_timeout: float,
        retry_policy: Callable[[int], float] | None,
        connection_name: str | None,
    ) -> None:
        """
        @param reactor: the reactor to connect with and time things by.
        @param url: the broker's AMQP URI (C{amqp://} or C{amqps://}).
        @param default_name: the connection's name when neither
            C{connection_name} nor the URI gives one.
        @param stop_timeout: how long L{stopService} waits for the work
            being done.
        @param retry_policy: seconds to wait before reconnection attempt
            C{n}; L{backoffPolicy} by default.
        @param connection_name: the name the broker shows for the
            connection, over the URI's.
        @raise ValueError: C{url} is not an AMQP URI.
        """
        params = parse_url(url)
        self._reactor = reactor
        self._stop_timeout = stop_timeout
        self._setup_timeout = params.connection_timeout
        scheme = "amqps" if params.tls else "amqp"
        self._broker = f"{scheme}://{params.host}:{params.port} vhost {params.vhost!r}"
        if params.connection_name is None:
            params.connection_name = connection_name or default_name
        elif connection_name is not None:
            params.connection_name = connection_name
        endpoint, factory = endpoint_and_factory(reactor, params)
        self._client_service = ClientService(
            _ReportingEndpoint(endpoint, self._broker, self._attempt_failed),
            factory,
            retryPolicy=retry_policy if retry_policy is not None else backoffPolicy(),
            clock=reactor,
            prepareConnection=self._prepare,
        )
        self._stopping = False
        self._client: AMQPConnection | None = None

    # -- the Service interface -------------------------------------------------

    def startService(self) -> None:
        """
        Start connecting; the service's work starts once a connection is
        set up.
        """
        super().startService()  # type: ignore[no-untyped-call]
        self._stopping = False
        self._client_service.startService()

    def stopService(self) -> Deferred[None]:
        """
        Stop the work (L{_wind_down}), close the connection and stop
        reconnecting.

        @return: a L{Deferred} that fires with C{None} once stopped.  It
            does not fail.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._stop())

    def _when_ready(
        self, fail_after_failures: int | None, *, at_once: bool
    ) -> Deferred[AMQPConnection]:
        """
        Wait for a connection that is set up (L{ClientService.whenConnected}).

        @param fail_after_failures: fail after this many failed connection
            attempts in a row; never when C{None}.
        @param at_once: fire at once when a connection is set up already;
            otherwise always in a later reactor turn.
        @return: a L{Deferred} firing with the connected L{AMQPConnection}, in
            the reactor turn after it was set up; failing with
            C{CancelledError} when the service stops first, or with the
            last attempt's error after C{fail_after_failures} failed
            attempts.
        """
        connected = self._client_service.whenConnected(failAfterFailures=fail_after_failures)
        if at_once and connected.called:
            return connected.addCallback(lambda protocol: cast(AMQPConnection, protocol))
        # ClientService fires it from inside its state machine, which
        # cannot take another input (whenConnected, stopService) until the
        # transition is over: hand the result on in a later turn.
        result: Deferred[AMQPConnection] = Deferred()
        connected.addBoth(lambda outcome: self._reactor.callLater(0, _fire, result, outcome))
        return result

    # -- preparing connections -------------------------------------------------

    def _prepare(self, protocol: IProtocol) -> Deferred[None]:
        """
        C{ClientService}'s C{prepareConnection}: set the new connection up.

        @return: a L{Deferred} that fires with C{None} once it is set up, or
            fails with why it could not be, once the connection is closed.
        """
        return Deferred.fromCoroutine(self._prepare_or_close(protocol))

    async def _prepare_or_close(self, protocol: IProtocol) -> None:
        # ClientService hands us its proxy for the AMQPConnection; attribute
        # access goes through to the client.
        client = cast(AMQPConnection, protocol)
        try:
            setting_up = Deferred.fromCoroutine(self._set_up(client))
            await setting_up.addTimeout(self._setup_timeout, self._reactor)
        except Exception as e:
            _detach(protocol)
            self._attempt_failed(e)
            await _close(client)
            raise

    async def _set_up(self, client: AMQPConnection) -> None:
        """
        Set a new connection up for the service's work, keeping it as
        C{_client} once done.  Raise C{CancelledError} or L{_Rejected} when
        the service started stopping meanwhile.

        @param client: the new connection, not yet open.
        """
        raise NotImplementedError()

    def _log_fields(self) -> dict[str, object]:
        """
        @return: the fields the service's messages are formatted with.
        """
        raise NotImplementedError()

    def _attempt_failed(self, error: BaseException) -> None:
        if self._stopping and isinstance(error, (CancelledError, _Rejected)):
            return
        self.log.warn(self._cannot_format, broker=self._broker, error=error, **self._log_fields())

    def _reconnect(self, client: AMQPConnection, ended: str, **fields: object) -> None:
        """
        The work on C{client} ended.  Unless we are stopping: when the
        connection was lost, C{ClientService} reconnects by itself;
        otherwise log C{ended} (a format string, with C{fields}) and close
        the connection to start afresh.
        """
        if self._stopping:
            return
        if client.closed is not None:
            self.log.warn(
                "lost the connection to {broker} ({reason}); reconnecting",
                broker=self._broker,
                reason=client.closed,
            )
            return
        self.log.warn(ended, **fields)
        _close(client)

    # -- stopping -----------------------------------------------------------------

    async def _wind_down(self) -> None:
        """
        Stop the service's work (within C{_stop_timeout}) before the
        connection is closed.  It must not fail.
        """
        raise NotImplementedError()

    async def _stop(self) -> None:
        self._stopping = True
        client, self._client = self._client, None
        await self._wind_down()
        if client is not None:
            await _close(client)
        await self._client_service.stopService()
        self.log.info(self._stopped_format, **self._log_fields())


class ConsumerService(_ReconnectingService):
    """
    Consume one queue, calling a handler with each message, reconnecting
    whenever the connection is lost.

    @ivar queue: the queue consumed.
    @ivar prefetch: how many unacknowledged messages the broker may send.
    @ivar requeue_on_failure: whether a message whose handler failed goes
        back to the queue (rather than being dead-lettered or dropped).
    """

    _cannot_format = "cannot consume from queue {queue} at {broker}: {error}; will retry"
    _stopped_format = "stopped consuming from queue {queue}"

    def __init__(
        self,
        reactor: Any,
        url: str,
        queue: str,
        handler: Handler,
        prefetch: int = 10,
        *,
        declare: bool = True,
        requeue_on_failure: bool = False,
        stop_timeout: float = 30.0,
        retry_policy: Callable[[int], float] | None = None,
        connection_name: str | None = None,
    ) -> None:
        """
        @param reactor: the reactor to connect with and time things by.
        @param url: the broker's AMQP URI (C{amqp://} or C{amqps://}).
        @param queue: the queue to consume.
        @param handler: called with each L{Message} (see L{Handler}).
        @param prefetch: the C{basic.qos} prefetch count: how many messages
            may be unacknowledged (handled concurrently) at once; C{0} means
            no limit.
        @param declare: declare the queue (durable) before consuming; when
            false, only check that it exists (a passive declare).
        @param requeue_on_failure: requeue a message whose handler failed
            instead of rejecting it for good.
        @param stop_timeout: how long L{stopService} waits, in seconds, for
            the consumer to be cancelled and the handlers running to finish.
        @param retry_policy: seconds to wait before reconnection attempt
            C{n}; exponential back-off from one second up to a minute by
            default.
        @param connection_name: the name the broker shows for the
            connection; the URI's C{connection_name}, or C{txamqp_next
            consumer of <queue>} by default.
        @raise ValueError: C{url} is not an AMQP URI, or C{prefetch} is out
            of range.
        """
        if not 0 <= prefetch <= 0xFFFF:
            raise ValueError(f"prefetch must be between 0 and 65535, not {prefetch}")
        super().__init__(
            reactor,
            url,
            default_name=f"txamqp_next consumer of {queue}",
            stop_timeout=stop_timeout,
            retry_policy=retry_policy,
            connection_name=connection_name,
        )
        self.queue = queue
        self.prefetch = prefetch
        self.requeue_on_failure = requeue_on_failure
        self._handler = handler
        self._declare = declare
        self._consumer: Consumer | None = None
        self._handlers = _InFlight()

    def __repr__(self) -> str:
        return f"<ConsumerService queue={self.queue!r} at {self._broker}>"

    # -- the Service interface -------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """
        Stop consuming (cancel the consumer), wait for the handlers still
        running to finish and their messages to be acknowledged or rejected
        (together at most C{stop_timeout} seconds), then close the
        connection (waiting at most the client's C{close_timeout} for the
        broker to agree).  Messages whose handler has not finished by then
        are left unacknowledged: the broker redelivers them.

        @return: a L{Deferred} that fires with C{None} once the connection is
            closed and no reconnection is pending.  It does not fail.
        """
        return super().stopService()

    def when_consuming(self, fail_after_failures: int | None = None) -> Deferred[AMQPConnection]:
        """
        Wait for a connection that is consuming (L{ClientService.whenConnected}).

        @param fail_after_failures: fail after this many failed connection
            attempts in a row; never when C{None}.
        @return: a L{Deferred} that fires with the connected L{AMQPConnection} at
            once if the service is consuming, else in the reactor turn after
            the consumer has started.  It fails with C{CancelledError} when
            the service stops first, or with the last attempt's error after
            C{fail_after_failures} failed attempts.
        """
        return self._when_ready(fail_after_failures, at_once=True)

    # -- preparing connections -------------------------------------------------

    async def _set_up(self, client: AMQPConnection) -> None:
        opened = await client.when_open()
        channel = await client.open_channel()
        if self._declare:
            await channel.queue_declare(queue=self.queue, durable=True)
        else:
            await channel.queue_declare(queue=self.queue, passive=True)
        await channel.basic_qos(prefetch_count=self.prefetch)
        if self._stopping:
            raise _Rejected()
        consumer = await channel.basic_consume(queue=self.queue, callback=self._deliver)
        if self._stopping:
            raise _Rejected()
        self._client = opened
        self._consumer = consumer
        consumer.when_ended().addCallback(self._consumer_ended, opened, consumer)
        self.log.info(
            "consuming from queue {queue} at {broker} (prefetch {prefetch})",
            queue=self.queue,
            broker=self._broker,
            prefetch=self.prefetch,
        )

    def _log_fields(self) -> dict[str, object]:
        return {"queue": self.queue}

    def _consumer_ended(self, _: object, client: AMQPConnection, consumer: Consumer) -> None:
        """
        The consumer ended.  Unless we are stopping: when the connection was
        lost, C{ClientService} reconnects by itself; when only the channel
        closed or the broker cancelled the consumer (its queue was deleted,
        say), close the connection to start afresh.
        """
        if self._consumer is consumer:
            self._consumer = None
        self._reconnect(
            client,
            "consumer of queue {queue} ended ({reason}); reconnecting",
            queue=self.queue,
            reason=consumer.cancelled,
        )

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
            self.log.failure(
                "handler failed on message {delivery_tag} from queue {queue}",
                level=LogLevel.error,
                queue=self.queue,
                delivery_tag=message.delivery_tag,
            )
            await self._settle(message, "reject", message.reject(requeue=self.requeue_on_failure))
        else:
            await self._settle(message, "ack", message.ack())

    async def _settle(self, message: Message, action: str, sent: Deferred[None]) -> None:
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

    def run(self, work: Coroutine[Any, Any, None], on_failure: Callable[[Failure], None]) -> None:
        """
        Run C{work}, counting it until it is done.

        @param work: the coroutine to run (awaiting L{Deferred}s).
        @param on_failure: called with the failure if C{work} raises.
        """
        self.count += 1
        running = Deferred.fromCoroutine(work)
        running.addErrback(on_failure)
        running.addBoth(self._done)

    def _done(self, _: object) -> None:
        self.count -= 1
        if not self.count:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                if not d.called:
                    d.callback(None)

    def when_idle(self) -> Deferred[None]:
        """
        @return: a L{Deferred} that fires with C{None} once nothing is
            running, at once if nothing is.  Cancelling it (a timeout) only
            stops the wait.
        """
        if not self.count:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        return d


def _close(client: AMQPConnection) -> Deferred[None]:
    """
    Close a connection unless it is already closed or closing.

    @return: a L{Deferred} that fires with C{None} once the connection is
        closed, or at once if it already was.  It does not fail.
    """
    if client.closed is not None:
        return succeed(None)
    return client.close().addErrback(lambda _: None)


def _fire(d: Deferred[Any], outcome: object) -> None:
    if isinstance(outcome, Failure):
        d.errback(outcome)
    else:
        d.callback(outcome)


def _ignore(reason: Failure) -> None:
    pass


def _detach(protocol: IProtocol) -> None:
    """
    Keep C{ClientService} from hearing that a rejected connection closed.

    C{ClientService} counts a failed C{prepareConnection} as a failed attempt
    but has no transition for that connection being lost afterwards (or
    while C{prepareConnection} runs): its state machine raises
    C{NoTransition} from C{connectionLost}, which is logged as an unhandled
    error.  The proxy it wraps protocols in reports the loss through
    C{_lostNotification}; replace that for connections we reject.
    """
    if "_lostNotification" in vars(protocol):
        vars(protocol)["_lostNotification"] = _ignore


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """
    An endpoint that reports failed connection attempts (C{ClientService}
    retries them without saying why).
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        broker: str,
        report: Callable[[BaseException], None],
    ) -> None:
        self._endpoint = endpoint
        self._broker = broker
        self._report = report

    def __repr__(self) -> str:
        return f"<{self._broker}>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        return self._endpoint.connect(protocolFactory).addErrback(self._failed)

    def _failed(self, failure: Failure) -> Failure:
        if failure.value is not None:
            self._report(failure.value)
        return failure
