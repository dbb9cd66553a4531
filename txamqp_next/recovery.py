# -*- test-case-name: tests.test_recovery -*-
"""
Connections that heal themselves: L{RecoveringConnection} and its
L{RecoveringChannel}s::

    connection = await txamqp_next.connect_recovering(
        reactor, "amqp://user:secret@h1,h2,h3/prod", on_event=print
    )
    ch = await connection.open_channel()
    await ch.basic_qos(prefetch_count=10)
    await ch.confirm_select()
    await ch.queue_declare(queue="jobs", durable=True)
    consumer = await ch.basic_consume(queue="jobs", callback=handle)
    await ch.basic_publish(routing_key="jobs", body=b"...")

The connection is made by a L{ClientService} (with its back-off) through a
L{FailoverEndpoint}, which tries the brokers in turn.  When it is lost, the
next connection is set up before anyone uses it:

  1. the exchanges, queues and bindings declared through the channels are
     declared again, in order (a queue the server named gets a new name,
     and its bindings, a binding's routing key that was its old name, and
     its consumers follow it: see L{RecoveringConnection.renamed});
  2. each channel is opened again with its QoS, confirm mode and
     transaction mode, and its consumers start again with the same
     callbacks (a consumer tag the server chose changes);
  3. the publishes made while the connection was down, which waited (within
     the C{max_held_bytes} bound), go out in order; in confirm mode the
     publishes the broker had not confirmed at the loss go out again first
     (at least once: the broker may have kept some, so consumers can see
     duplicates), or fail, with C{republish=False}.

An acknowledgement of a message delivered on an earlier connection is
dropped with a log line: its delivery tag means nothing on the new one, and
the broker redelivers the message.  Listeners
(L{RecoveringConnection.add_listener}) hear of each
L{ConnectionEvent}: C{connected}, C{lost}, C{recovered}, C{failed} and
C{closed}.

Errors that retrying cannot mend end the connection for good, with one log
line: refused credentials, a missing virtual host or one the user may not
use, and declarations the broker refuses (a queue that exists with other
arguments).  A channel the broker closes (a publish to a missing exchange)
stays closed, as a L{Channel} does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from txamqp_next import methods as typed
from txamqp_next._deferred import AsyncioDeferred, fail, from_coroutine, succeed
from txamqp_next._methods import MethodSet, Properties, methods_for
from txamqp_next._params import ConnectionParameters
from txamqp_next.channel import (
    Channel,
    Consumer,
    ConsumerCancelled,
    MessageStream,
    _body_bytes,
)
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import Broker, BrokerList, FailoverEndpoint, brokers_for
from txamqp_next.errors import (
    AccessRefused,
    AuthenticationError,
    ChannelClosed,
    ConnectionClosed,
    LocalProtocolError,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    PublishBufferFull,
)
from txamqp_next.message import Message
from txamqp_next.spec import Spec, load, python_name, spec_name
from txamqp_next.stats import ChannelStats, ConnectionStats, sum_channels, sum_connections

__all__ = [
    "PERMANENT_ERRORS",
    "ConnectionEvent",
    "RecoveringChannel",
    "RecoveringConnection",
    "RecoveringConsumer",
    "connect_recovering",
]

#: errors that end a recovering connection for good instead of a retry
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    AuthenticationError,
    NotAllowed,
    AccessRefused,
    PreconditionFailed,
)

Listener = Callable[["ConnectionEvent"], object]


@dataclass(frozen=True)
class ConnectionEvent:
    """
    What happened to a L{RecoveringConnection}.

    @ivar kind: C{"connected"} (the first connection is set up),
        C{"lost"}, C{"recovered"} (a later connection is set up),
        C{"failed"} (an error that retrying cannot mend ended it) or
        C{"closed"} (the application closed it).
    @ivar broker: the broker's name (never with a password), when one is
        concerned.
    @ivar reason: the error, for C{lost} and C{failed}.
    @ivar renamed: for C{recovered}, the queues the server named anew: old
        name to new name.
    @ivar republished: for C{recovered}, how many publishes the broker had
        not confirmed at the loss were sent again.
    """

    kind: str
    broker: str = ""
    reason: BaseException | None = None
    renamed: Mapping[str, str] = field(default_factory=dict)
    republished: int = 0


@dataclass
class _Declaration:
    """
    An exchange, queue or binding declared through a recovering channel,
    declared again on each new connection.

    @ivar method: the full method name (C{"queue.declare"}).
    @ivar fields: its fields, as last sent.
    """

    method: str
    fields: dict[str, Any]


@dataclass
class _Publish:
    """
    A publish of a recovering channel, until it is written (or, in confirm
    mode, confirmed).
    """

    fields: dict[str, Any]
    body: bytes
    properties: Any
    result: Deferred[None]

    @property
    def size(self) -> int:
        return len(self.body)


class _Factory(Factory):
    """
    Builds an L{AMQPConnection} with the parameters of the broker the
    failover endpoint is trying.
    """

    noisy = False

    def __init__(
        self,
        reactor: Any,
        failover: FailoverEndpoint,
        built: Callable[[AMQPConnection], object] = lambda connection: None,
    ) -> None:
        self._reactor = reactor
        self._failover = failover
        self._built = built

    def buildProtocol(self, addr: Any) -> AMQPConnection:
        connection = AMQPConnection(self._failover.connecting.params, clock=self._reactor)
        self._built(connection)
        return connection


class RecoveringConnection:
    """
    A connection to one of several brokers that reconnects by itself and
    sets itself up again: see the module's description.

    @param reactor: the reactor to connect with and time things by.
    @param brokers: the brokers, tried in turn (see L{brokers_for}): AMQP
        URIs, endpoint strings or endpoints, alone or in a list.
    @param params: the parameters for brokers given as endpoints.
    @param retry_policy: seconds to wait before reconnection attempt C{n};
        exponential back-off up to a minute by default.
    @param republish: in confirm mode, send the publishes not confirmed at a
        loss again on the next connection (at least once); when false, fail
        them with the connection's error (at most once).
    @param permanent_errors: the errors that end the connection for good.
    @param overrides: connection parameters for every broker
        (C{connection_name}, C{heartbeat}, ...).

    @ivar renamed: the queues the server named anew since the first
        connection, old name to current name.
    @ivar failed: the error that ended the connection for good, or C{None}.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        brokers: BrokerList,
        *,
        params: ConnectionParameters | None = None,
        retry_policy: Callable[[int], float] | None = None,
        republish: bool = True,
        permanent_errors: tuple[type[BaseException], ...] = PERMANENT_ERRORS,
        **overrides: Any,
    ) -> None:
        self._reactor = reactor
        #: the reactor's clock, which the channels and consumers time by
        self.clock: IReactorTime = reactor
        self.brokers = brokers_for(reactor, brokers, params, **overrides)
        self._failover = FailoverEndpoint(self.brokers)
        self._retry_policy = retry_policy if retry_policy is not None else backoffPolicy()
        self._service = ClientService(
            self._failover,
            _Factory(reactor, self._failover, self._built),
            retryPolicy=self._retry_delay,
            clock=reactor,
            prepareConnection=self._prepare,
        )
        self.republish = republish
        self._permanent = permanent_errors
        self._current: AMQPConnection | None = None
        self._broker: Broker | None = None
        self._set_up_before = False
        self._channels: list[RecoveringChannel] = []
        self._topology: list[_Declaration] = []
        self.renamed: dict[str, str] = {}
        self._listeners: list[Listener] = []
        self._waiters: list[Deferred[AMQPConnection]] = []
        self._held_bytes = 0
        self._methods: MethodSet | None = None
        name = self.brokers[0].params.connection_name
        # what log lines start with: the connection's name
        self._who = f"{name}: " if name else ""
        self._started = False
        self._closing = False
        self.failed: BaseException | None = None
        # counters (see stats): the sums of the connections that ended, the
        # connections not ended yet, and our own
        self._ended_stats = ConnectionStats()
        self._connections: list[AMQPConnection] = []
        self._reconnect_attempts = 0
        self._recoveries = 0

    def __repr__(self) -> str:
        state = "connected" if self._current is not None else "not connected"
        return f"<RecoveringConnection to {', '.join(b.name for b in self.brokers)}, {state}>"

    # -- the application's side ------------------------------------------------

    @property
    def connection(self) -> AMQPConnection | None:
        """
        The connection set up now, or C{None} while there is none.
        """
        return self._current

    @property
    def broker(self) -> Broker | None:
        """
        The broker connected to now, or C{None}.
        """
        return self._broker if self._current is not None else None

    @property
    def methods(self) -> MethodSet:
        """
        The method classes of the spec the connection speaks (that of the
        first broker's parameters).
        """
        if self._methods is None:
            spec = self.brokers[0].params.spec
            self._methods = methods_for(spec if isinstance(spec, Spec) else load(spec or "0-9-1"))
        return self._methods

    @property
    def max_held_bytes(self) -> int:
        """
        The most body bytes of publishes that wait over all channels while
        the connection is down.
        """
        return self.brokers[0].params.max_held_bytes

    @property
    def held_bytes(self) -> int:
        """
        The body bytes of the publishes waiting for a connection now.
        """
        return self._held_bytes

    def start(self) -> Deferred[RecoveringConnection]:
        """
        Start connecting.

        @return: a L{Deferred} firing with this connection once the first
            connection is set up, or failing with the error that ended it
            for good (refused credentials, say).
        """
        if not self._started:
            self._started = True
            self._service.startService()
        return self.when_connected().addCallback(lambda _: self)

    def when_connected(self, fail_after_failures: int | None = None) -> Deferred[AMQPConnection]:
        """
        @param fail_after_failures: fail after this many failed connection
            attempts in a row (see L{ClientService.whenConnected}); never
            when C{None}.
        @return: a L{Deferred} firing with the connection set up now, or
            with the next one; failing with the error that ended the
            connection for good, L{ConnectionClosed} once it is closed, or
            the last attempt's error after C{fail_after_failures} failed
            attempts.
        """
        if fail_after_failures is not None and self.failed is None and not self._closing:
            if self._current is not None and self._current.closed is None:
                return succeed(self._current)
            # ClientService fires inside its state machine: go on a turn later
            result: Deferred[AMQPConnection] = AsyncioDeferred()
            self._service.whenConnected(failAfterFailures=fail_after_failures).addBoth(
                lambda outcome: self._reactor.callLater(0, self._relay, result, outcome)
            )
            return result
        if self.failed is not None:
            return fail(self.failed)
        if self._closing:
            return fail(ConnectionClosed(reply_text="the recovering connection was closed"))
        if self._current is not None and self._current.closed is None:
            return succeed(self._current)
        d: Deferred[AMQPConnection] = AsyncioDeferred()
        self._waiters.append(d)
        return d

    def _relay(self, result: Deferred[AMQPConnection], outcome: object) -> None:
        if isinstance(outcome, Failure):
            result.errback(self.failed or outcome)
        elif self._current is not None:
            result.callback(self._current)
        else:
            self.when_connected().chainDeferred(result)

    def add_listener(self, listener: Listener) -> None:
        """
        Call C{listener} with each L{ConnectionEvent}.
        """
        self._listeners.append(listener)

    def stats(self) -> ConnectionStats:
        """
        What this connection did so far, over every connection it made (the
        counters of those lost are kept), with its C{reconnect_attempts} and
        C{recoveries} (see L{ConnectionStats}).

        @return: a snapshot; it does not change afterwards.
        """
        return sum_connections(
            [self._ended_stats, *(c.stats() for c in self._connections)],
            reconnect_attempts=self._reconnect_attempts,
            recoveries=self._recoveries,
        )

    def _built(self, connection: AMQPConnection) -> None:
        """
        A connection was made: count it until it ends.
        """
        self._connections.append(connection)
        connection.when_closed().addCallback(lambda _: self._ended(connection))

    def _ended(self, connection: AMQPConnection) -> None:
        self._connections.remove(connection)
        self._ended_stats = sum_connections((self._ended_stats, connection.stats()))

    def _retry_delay(self, attempt: int) -> float:
        """
        C{ClientService}'s retry policy: the delay before attempt
        C{attempt}, from ours, counted and logged.
        """
        delay = self._retry_policy(attempt)
        self._reconnect_attempts += 1
        self.log.info(
            "{who}reconnecting to {brokers} in {delay:.3g}s (attempt {attempt})",
            amqp_event="recovery.reconnecting",
            who=self._who,
            brokers=self._names(),
            attempt=attempt,
            delay=delay,
        )
        return delay

    def open_channel(self) -> Deferred[RecoveringChannel]:
        """
        Open a recovering channel.

        @return: a L{Deferred} firing with it once it is open on the
            connection (waiting for a connection if there is none).
        """
        if self.failed is not None:
            return fail(self.failed)
        if self._closing:
            return fail(ConnectionClosed(reply_text="the recovering connection was closed"))
        channel = RecoveringChannel(self)
        self._channels.append(channel)
        if self._current is None:
            return channel._when_attached().addCallback(lambda _: channel)
        return from_coroutine(self._open_now(channel))

    async def _open_now(self, channel: RecoveringChannel) -> RecoveringChannel:
        connection = self._current
        assert connection is not None
        try:
            await channel._attach(connection)
        except Exception as e:
            if self._current is connection and connection.closed is None:
                # it never opened (no channel id was free, say): it is
                # closed for good, and not opened again after a reconnection
                channel._end(e)
                raise
            # the connection went meanwhile: the channel opens on the next
            await channel._when_attached()
        return channel

    def queue_name(self, name: str) -> str:
        """
        The current name of a queue the server named (its first name, or
        any since), or C{name} itself.
        """
        seen = set()
        while name in self.renamed and name not in seen:
            seen.add(name)
            name = self.renamed[name]
        return name

    def close(self) -> Deferred[None]:
        """
        Close the connection and stop reconnecting.  Publishes still waiting
        fail with L{ConnectionClosed}.

        @return: a L{Deferred} firing with C{None} once closed.  It does not
            fail.
        """
        return from_coroutine(self._close())

    async def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        error = ConnectionClosed(reply_text="the recovering connection was closed")
        current, self._current = self._current, None
        for channel in list(self._channels):
            channel._end(error)
        if current is not None and current.closed is None:
            await current.close().addErrback(lambda _: None)
        await self._service.stopService()
        self._fail_waiters(error)
        self._emit(ConnectionEvent("closed"))
        self.log.info(
            "{who}closed the connection to {brokers}",
            amqp_event="recovery.closed",
            who=self._who,
            brokers=self._names(),
        )

    # -- recording what the channels declare -------------------------------------

    def _record(self, method: str, fields: dict[str, Any], reply: Any) -> None:
        """
        Remember a declaration or undo one that a deletion undid.
        """
        if method == "exchange.delete":
            name = fields.get("exchange", "")
            self._topology = [
                d
                for d in self._topology
                if not (
                    (d.method == "exchange.declare" and d.fields.get("exchange") == name)
                    or (d.method == "queue.bind" and d.fields.get("exchange") == name)
                    or (
                        d.method == "exchange.bind"
                        and name in (d.fields.get("source"), d.fields.get("destination"))
                    )
                )
            ]
        elif method == "queue.delete":
            name = self.queue_name(fields.get("queue", ""))
            self._topology = [
                d
                for d in self._topology
                if not (
                    d.method in ("queue.declare", "queue.bind") and d.fields.get("queue") == name
                )
            ]
        elif method in ("queue.unbind", "exchange.unbind"):
            bound = "queue.bind" if method == "queue.unbind" else "exchange.bind"
            key = _binding_key(fields)
            self._topology = [
                d
                for d in self._topology
                if not (d.method == bound and _binding_key(d.fields) == key)
            ]
        elif not fields.get("passive"):
            fields = dict(fields)
            if method == "queue.declare":
                fields["queue"] = getattr(reply, "queue", fields.get("queue", ""))
                fields["_server_named"] = not fields.get("_given_name")
            declaration = _Declaration(method, fields)
            if declaration not in self._topology:
                self._topology.append(declaration)

    async def _declare_again(self, connection: AMQPConnection) -> dict[str, str]:
        """
        Declare the recorded topology on a new connection.

        @return: the queues the server named anew, old name to new name.
        """
        renamed: dict[str, str] = {}
        if not self._topology:
            return renamed
        channel = await connection.open_channel()
        for declaration in list(self._topology):
            fields = {k: v for k, v in declaration.fields.items() if not k.startswith("_")}
            # a routing key that is a server-named queue's name (the usual
            # binding of a reply queue) follows the name too
            for key in ("queue", "destination", "source", "routing_key"):
                if key in fields and fields[key] in renamed:
                    fields[key] = renamed[fields[key]]
            if declaration.method == "queue.declare" and declaration.fields.get("_server_named"):
                old = fields["queue"]
                fields["queue"] = ""
                ok = await channel.invoke(declaration.method, **fields)
                renamed[old] = ok.queue
                declaration.fields["queue"] = ok.queue
                continue
            try:
                await channel.invoke(declaration.method, **fields)
            except NotFound as e:
                if not declaration.method.endswith(".bind"):
                    raise
                # an exchange or queue declared elsewhere is gone: so is
                # the binding, for good
                self.log.warn(
                    "{who}binding {fields} dropped: {error}",
                    who=self._who,
                    fields=fields,
                    error=e,
                )
                self._topology.remove(declaration)
                channel = await connection.open_channel()
                continue
            declaration.fields.update(
                {
                    k: fields[k]
                    for k in ("queue", "destination", "source", "routing_key")
                    if k in fields
                }
            )
        await channel.channel_close()
        self.renamed.update(renamed)
        return renamed

    # -- setting connections up ----------------------------------------------------

    def _prepare(self, protocol: IProtocol) -> Deferred[None]:
        """
        C{ClientService}'s C{prepareConnection}: set the new connection up.
        """
        return from_coroutine(self._prepare_or_close(protocol))

    async def _prepare_or_close(self, protocol: IProtocol) -> None:
        # ClientService hands us its proxy: keep the connection itself
        connection = cast(AMQPConnection, getattr(protocol, "_protocol", protocol))
        broker = self._failover.connecting
        try:
            await connection.when_open().addTimeout(broker.params.connection_timeout, self._reactor)
            if self._closing:
                raise CancelledError()
            await self._set_up(connection, broker)
        except Exception as e:
            _detach(protocol)
            if connection.closed is None:
                await connection.close().addErrback(lambda _: None)
            if self._is_permanent(e) and not self._closing:
                self._give_up(e)
            elif not self._closing:
                self.log.warn(
                    "{who}cannot set up a connection to {broker}: {error}; will retry",
                    amqp_event="recovery.setup_failed",
                    who=self._who,
                    broker=broker.name,
                    error=e,
                )
            raise

    def _is_permanent(self, error: BaseException) -> bool:
        if not isinstance(error, self._permanent):
            return False
        # a connection dropped after start-ok reads as refused credentials,
        # but a broker that died then drops it too: only a close is sure
        return not (
            isinstance(error, AuthenticationError)
            and error.method is None
            and isinstance(error.args[0], Failure)
        )

    async def _set_up(self, connection: AMQPConnection, broker: Broker) -> None:
        first = not self._set_up_before
        self._set_up_before = True
        renamed = await self._declare_again(connection) if not first else {}
        republished = 0
        for channel in list(self._channels):
            republished += await channel._restore(connection, renamed)
        if self._closing:
            raise CancelledError()
        self._current = connection
        self._broker = broker
        connection.when_closed().addCallback(lambda _: self._lost(connection))
        for channel in list(self._channels):
            channel._release()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(connection)
        if first:
            self.log.info(
                "{who}connected to {broker}",
                amqp_event="recovery.connected",
                who=self._who,
                broker=broker.name,
            )
            self._emit(ConnectionEvent("connected", broker.name))
        else:
            self._recoveries += 1
            self.log.info(
                "{who}recovered the connection to {broker}: {channels} channels, "
                "{republished} publishes sent again, {renamed} queues renamed",
                amqp_event="recovery.recovered",
                who=self._who,
                broker=broker.name,
                channels=len(self._channels),
                republished=republished,
                renamed=len(renamed),
            )
            self._emit(ConnectionEvent("recovered", broker.name, None, renamed, republished))

    def _lost(self, connection: AMQPConnection) -> None:
        if connection is not self._current:
            return
        self._current = None
        if self._closing:
            return
        self._failover.lost()
        broker = self._broker.name if self._broker is not None else ""
        reason = connection.closed
        self.log.warn(
            "{who}lost the connection to {broker} ({reason}); reconnecting",
            amqp_event="recovery.lost",
            reply_code=getattr(reason, "reply_code", None),
            reply_text=getattr(reason, "reply_text", str(reason)),
            who=self._who,
            broker=broker,
            reason=reason,
        )
        self._emit(ConnectionEvent("lost", broker, reason))

    def _give_up(self, error: BaseException) -> None:
        """
        An error retrying cannot mend: stop for good.
        """
        if self.failed is not None:
            return
        self.failed = error
        self.log.error(
            "{who}giving up on {brokers}: {error}",
            amqp_event="recovery.failed",
            who=self._who,
            brokers=self._names(),
            error=error,
        )
        for channel in list(self._channels):
            channel._end(error)
        self._fail_waiters(error)
        self._emit(ConnectionEvent("failed", self._failover.connecting.name, error))
        # ClientService is in the middle of a transition: stop it afterwards
        self._reactor.callLater(0, self._service.stopService)

    def _fail_waiters(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(error)

    def _emit(self, event: ConnectionEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                self.log.failure("connection listener {listener} failed", listener=listener)

    def _names(self) -> str:
        return ", ".join(b.name for b in self.brokers)

    # -- held publishes, over all channels ------------------------------------------

    def _hold(self, size: int, force: bool) -> bool:
        held = self._held_bytes + size
        if held > self.max_held_bytes and not force:
            return False
        self._held_bytes = held
        return True

    def _release(self, size: int) -> None:
        self._held_bytes -= size


def _binding_key(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        fields.get(k) for k in ("queue", "exchange", "source", "destination", "routing_key")
    )


def _detach(protocol: IProtocol) -> None:
    """
    Keep C{ClientService} from hearing that a rejected connection closed
    (it has no transition for that loss; see L{txamqp_next.service}).
    """
    if "_lostNotification" in vars(protocol):
        vars(protocol)["_lostNotification"] = lambda reason: None


class _Delivered:
    """
    The channel a delivery of one connection sees: its acknowledgements go
    to that connection's channel, or are dropped with a log line once the
    connection is gone; everything else goes to the recovering channel.
    """

    def __init__(self, channel: RecoveringChannel, underneath: Channel) -> None:
        self._recovering = channel
        self._underneath = underneath

    @property
    def id(self) -> int:
        return self._underneath.id

    def _gone(self) -> bool:
        """
        Whether the delivery's connection is closed or closing.
        """
        connection = self._underneath.connection
        return connection.closed is not None or connection.core.error is not None

    def _settle(self, what: str, delivery_tag: int, sending: Deferred[Any]) -> Deferred[Any]:
        def dropped(failure: Failure) -> None:
            if not self._gone():
                failure.raiseException()
            self._recovering.log.warn(
                "{what} of delivery {delivery_tag} dropped: it came on a connection since "
                "lost, and the broker delivers the message again",
                what=what,
                delivery_tag=delivery_tag,
            )

        return sending.addErrback(dropped)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> Deferred[None]:
        sending = self._underneath.basic_ack(delivery_tag=delivery_tag, multiple=multiple)
        return self._settle("ack", delivery_tag, sending)

    def invoke(self, name: str, **fields: Any) -> Deferred[Any]:
        sending = self._underneath.invoke(name, **fields)
        if name in ("basic.nack", "basic.reject"):
            return self._settle(name.split(".")[1], fields.get("delivery_tag", 0), sending)
        return sending

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recovering, name)


class RecoveringConsumer(MessageStream):
    """
    A consumer of a L{RecoveringChannel}: started again on each new
    connection with the same callback.  Without a callback its messages go
    to C{queue}, which lasts across connections, and it is an async
    iterator.

    @ivar queue_name: the queue it consumes (its current name).
    @ivar consumer_tag: its current tag.
    @ivar cancelled: why it ended for good, or C{None} while it runs.
    """

    def __init__(
        self,
        channel: RecoveringChannel,
        fields: dict[str, Any],
        callback: Callable[[Message], object] | None,
    ) -> None:
        self.channel = channel
        self._fields = fields
        self._given_tag = bool(fields.get("consumer_tag"))
        self.callback = callback
        self._clock = channel._connection._reactor
        self.consumer_tag: str = fields.get("consumer_tag", "")
        self.cancelled: BaseException | None = None
        self._current: Consumer | None = None

    def __repr__(self) -> str:
        return f"<RecoveringConsumer {self.consumer_tag!r} of {self.queue_name!r}>"

    @property
    def queue_name(self) -> str:
        return str(self._fields.get("queue", ""))

    async def _start(self, channel: Channel, renamed: Mapping[str, str]) -> None:
        fields = dict(self._fields)
        queue = fields.get("queue", "")
        if queue in renamed:
            fields["queue"] = self._fields["queue"] = renamed[queue]
        if not self._given_tag:
            fields["consumer_tag"] = ""
        # the deliveries of this connection settle through this view
        view = cast(Channel, _Delivered(self.channel, channel))
        consumer = await channel.basic_consume(
            callback=lambda message: self._deliver(message, view), **fields
        )
        self._current = consumer
        self.consumer_tag = consumer.consumer_tag
        consumer.when_ended().addCallback(self._ended, consumer)

    def _deliver(self, message: Message, view: Channel) -> object:
        message.channel = view
        if self.callback is None:
            self.queue.put(message)
            return None
        # the Consumer underneath runs coroutines and logs failures
        return self.callback(message)

    def _ended(self, reason: BaseException, consumer: Consumer) -> None:
        if consumer is not self._current:
            return
        self._current = None
        if isinstance(reason, ConsumerCancelled):
            # the application's cancel, or the broker's (its queue is gone)
            self._end(reason)

    def _end(self, reason: BaseException) -> None:
        """
        The consumer ended for good (cancelled by the application or the
        broker, or the channel or connection closed or failed): a lost
        connection does not end it.
        """
        if self._finish(reason):
            self.channel._consumers.pop(id(self), None)

    def cancel(self) -> Deferred[Any]:
        """
        Cancel the consumer for good.
        """
        return self.channel.basic_cancel(self.consumer_tag)


class RecoveringChannel(typed.ChannelMethods):
    """
    A channel of a L{RecoveringConnection}, opened again on each new
    connection.  It has a L{Channel}'s calls: those that declare, delete or
    bind exchanges and queues, set QoS, confirm or transaction mode, consume
    or cancel are recorded and done again on each new connection; the
    others (C{basic_get}, C{queue_purge}, ...) are sent as they are.  While
    the connection is down, calls wait for the next one.

    @ivar closed: why the channel closed for good (the application closed
        it, the broker closed it, or the connection failed), or C{None}.
    """

    log = Logger()

    _RECORDED = frozenset(
        {
            "exchange.declare",
            "exchange.delete",
            "exchange.bind",
            "exchange.unbind",
            "queue.declare",
            "queue.delete",
            "queue.bind",
            "queue.unbind",
        }
    )

    def __init__(self, connection: RecoveringConnection) -> None:
        self._connection = connection
        self._channel: Channel | None = None
        # the channel being set up on a new connection, until released
        self._restoring: Channel | None = None
        self._modes: dict[str, dict[str, Any]] = {}
        self._consumers: dict[int, RecoveringConsumer] = {}
        self._held: deque[_Publish] = deque()
        self._unconfirmed: list[_Publish] = []
        self._attach_waiters: list[Deferred[Channel]] = []
        self._return_handlers: list[Callable[[Message], object]] = []
        self._listeners: list[Callable[[Any], object]] = []
        self.closed: BaseException | None = None
        # the counters of the channels underneath that closed, and the
        # channels not closed yet
        self._closed_stats = ChannelStats()
        self._underneath: list[Channel] = []

    def __repr__(self) -> str:
        return f"<RecoveringChannel on {self._channel!r}>"

    def stats(self) -> ChannelStats:
        """
        What this channel did so far, summed over the channels it opened on
        each connection (see L{ChannelStats}).

        @return: a snapshot; it does not change afterwards.
        """
        return sum_channels([self._closed_stats, *(c.stats() for c in self._underneath)])

    @property
    def connection(self) -> RecoveringConnection:
        """
        The L{RecoveringConnection} the channel belongs to.
        """
        return self._connection

    @property
    def methods(self) -> MethodSet:
        """
        The method classes of the connection's spec.
        """
        return self._connection.methods

    @property
    def is_open(self) -> bool:
        """
        Whether the channel is open now (false while the connection is
        down, and once closed for good).
        """
        channel = self._channel
        return self.closed is None and channel is not None and channel.is_open

    def add_return_handler(self, handler: Callable[[Message], object]) -> None:
        """
        Call C{handler} with each message the broker returns (see
        L{Channel.add_return_handler}), on every connection.
        """
        self._return_handlers.append(handler)
        for channel in (self._channel, self._restoring):
            if channel is not None:
                channel.add_return_handler(handler)

    def add_listener(self, listener: Callable[[Any], object]) -> None:
        """
        Call C{listener} with each method the broker sends on the channel on
        its own (see L{Channel.add_listener}), on every connection.
        """
        self._listeners.append(listener)
        for channel in (self._channel, self._restoring):
            if channel is not None:
                channel.add_listener(listener)

    @property
    def channel(self) -> Channel | None:
        """
        The L{Channel} underneath now, or C{None} while the connection is
        down.
        """
        return self._channel

    @property
    def consumers(self) -> list[RecoveringConsumer]:
        return list(self._consumers.values())

    # -- attaching to connections ------------------------------------------------

    async def _attach(self, connection: AMQPConnection) -> None:
        """
        Open the channel on C{connection}, as L{_restore} does, and release
        what waited.
        """
        await self._restore(connection, {})
        self._release()

    async def _restore(self, connection: AMQPConnection, renamed: Mapping[str, str]) -> int:
        """
        Open the channel on a new connection with its modes and consumers.

        @return: how many unconfirmed publishes will be sent again.
        """
        if self.closed is not None:
            return 0
        started = False
        while not started:
            channel = await self._open(connection)
            started = True
            for consumer in list(self._consumers.values()):
                try:
                    await consumer._start(channel, renamed)
                except NotFound as e:
                    # its queue, declared elsewhere, is gone: the consumer
                    # ends, as when the broker cancels it; the broker closed
                    # the channel, so the others start again on a new one
                    self.log.warn(
                        "consumer of queue {queue} cannot start again ({error}); it ends",
                        queue=consumer.queue_name,
                        error=e,
                    )
                    consumer._end(ConsumerCancelled(f"its queue is gone: {e}"))
                    started = False
                    break
        republished = len(self._unconfirmed)
        if republished:
            for publish in self._unconfirmed:
                self._connection._hold(publish.size, force=True)
            self._held.extendleft(reversed(self._unconfirmed))
            self._unconfirmed = []
        return republished

    async def _open(self, connection: AMQPConnection) -> Channel:
        """
        Open the channel underneath on C{connection}, with the handlers,
        listeners and modes of the recovering channel.
        """
        channel = await connection.open_channel()
        self._restoring = channel
        self._underneath.append(channel)
        channel.when_closed().addCallback(self._underneath_closed, channel, connection)
        for handler in self._return_handlers:
            channel.add_return_handler(handler)
        for listener in self._listeners:
            channel.add_listener(listener)
        for name, fields in self._modes.items():
            await channel.invoke(name, **fields)
        return channel

    def _release(self) -> None:
        """
        The connection is set up: the channel is ready; send what waited.
        """
        channel, self._restoring = self._restoring, None
        if channel is None or channel.closed is not None or self.closed is not None:
            return
        self._channel = channel
        waiters, self._attach_waiters = self._attach_waiters, []
        for d in waiters:
            d.callback(channel)
        while self._held and self._channel is channel and channel.closed is None:
            publish = self._held.popleft()
            self._connection._release(publish.size)
            self._send(channel, publish)

    def _when_attached(self) -> Deferred[Channel]:
        if self.closed is not None:
            return fail(self.closed)
        if self._channel is not None and self._channel.closed is None:
            return succeed(self._channel)
        d: Deferred[Channel] = AsyncioDeferred()
        self._attach_waiters.append(d)
        return d

    def _underneath_closed(
        self, reason: BaseException, channel: Channel, connection: AMQPConnection
    ) -> None:
        self._underneath.remove(channel)
        self._closed_stats = sum_channels((self._closed_stats, channel.stats()))
        if channel is self._restoring:
            self._restoring = None
        if channel is not self._channel:
            return
        self._channel = None
        if connection.closed is None and not self._connection._closing:
            # the broker closed this channel (or the application did): it
            # stays closed, as a Channel does
            self._end(reason)

    def _end(self, reason: BaseException) -> None:
        """
        The channel is closed for good.
        """
        if self.closed is not None:
            return
        self.closed = reason
        if self in self._connection._channels:
            self._connection._channels.remove(self)
        for consumer in list(self._consumers.values()):
            consumer._end(reason)
        waiters, self._attach_waiters = self._attach_waiters, []
        for d in waiters:
            d.errback(reason)
        held, self._held = self._held, deque()
        unconfirmed, self._unconfirmed = self._unconfirmed, []
        for publish in held:
            self._connection._release(publish.size)
        for publish in [*unconfirmed, *held]:
            publish.result.errback(reason)

    # -- calls ---------------------------------------------------------------------

    def _call(self, name: str, **fields: Any) -> Deferred[Any]:
        return from_coroutine(self._call_when_attached(name, fields))

    async def _call_when_attached(self, name: str, fields: dict[str, Any]) -> Any:
        again = name in self._RECORDED or name in self._modes
        while True:
            channel = await self._when_attached()
            try:
                reply = await channel.invoke(name, **fields)
            except ConnectionClosed:
                if not again or self._connection._closing or self._connection.failed is not None:
                    raise
                # lost meanwhile: a declaration (done as often as need be)
                # goes again on the next connection
                continue
            return reply

    if not TYPE_CHECKING:
        # the methods of other specs, untyped (as on a Channel)

        def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
            if name.startswith("_"):
                raise AttributeError(name)
            full = spec_name(name)
            if self.methods.get(full) is None:
                raise AttributeError(
                    f"{type(self).__name__} has no method {name!r}: "
                    f"{self.methods.spec.describe()} defines no {full}"
                )

            def invoke(**fields: Any) -> Deferred[Any]:
                return self.invoke(full, **fields)

            invoke.__name__ = name
            return invoke

    def invoke(self, name: str, **fields: Any) -> Deferred[Any]:
        """
        Call a method of the spec by its full name; declarations and modes
        are recorded (see the class's description).
        """
        fields = {python_name(k): v for k, v in fields.items()}
        try:
            # bad fields raise TypeError now, as on a Channel
            self.methods.make(name, (), fields)
        except LocalProtocolError as e:
            return fail(e)
        if name in ("basic.qos", "confirm.select", "tx.select"):
            self._modes[name] = fields
            return self._call(name, **fields)
        if name in self._RECORDED:
            return self._call(name, **fields).addCallback(self._recorded, name, fields)
        return self._call(name, **fields)

    def _recorded(self, reply: Any, name: str, fields: dict[str, Any]) -> Any:
        if name == "queue.declare":
            fields = {**fields, "_given_name": bool(fields.get("queue"))}
        self._connection._record(name, fields, reply)
        return reply

    def confirm_select(self, no_wait: bool = False) -> Deferred[typed.Confirm.SelectOk | None]:
        """
        Put the channel in confirm mode, on this connection and each new
        one (see L{Channel.confirm_select}).
        """
        return self.invoke("confirm.select", no_wait=no_wait)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> Deferred[None]:
        """
        Acknowledge a delivery of the current connection (C{basic.ack}).
        A message's own L{Message.ack} is safer: it drops the ack of a
        delivery from an earlier connection, whose tag means nothing now.
        """
        return self.invoke("basic.ack", delivery_tag=delivery_tag, multiple=multiple)

    def basic_get(
        self, queue: str = "", no_ack: bool = False, **fields: NoReturn
    ) -> Deferred[Message | None]:
        """
        Fetch one message (C{basic.get}) once the channel is open.

        @return: a L{Deferred} firing with the L{Message}, or C{None} when
            the queue is empty.
        """
        return from_coroutine(self._get({"queue": queue, "no_ack": no_ack, **fields}))

    async def _get(self, fields: dict[str, Any]) -> Message | None:
        channel = await self._when_attached()
        message: Message | None = await channel.basic_get(**fields)
        if message is None:
            return None
        message.channel = cast(Channel, _Delivered(self, channel))
        return message

    def basic_consume(
        self,
        callback: Callable[[Message], object] | None = None,
        *,
        queue: str = "",
        consumer_tag: str = "",
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        no_wait: bool = False,
        arguments: Mapping[str, Any] | None = None,
        **more: NoReturn,
    ) -> Deferred[RecoveringConsumer]:
        """
        Start a consumer, started again on each new connection with the same
        callback.

        @param more: other fields of the loaded spec's C{basic.consume}, as
            for L{Channel.basic_consume}.
        @return: a L{Deferred} firing with the L{RecoveringConsumer}.
        """
        extra: dict[str, Any] = dict(more)
        fields = {
            "queue": queue,
            "consumer_tag": consumer_tag,
            "no_local": no_local,
            "no_ack": no_ack,
            "exclusive": exclusive,
            "no_wait": no_wait,
            "arguments": dict(arguments or {}),
            **{python_name(k): v for k, v in extra.items()},
        }
        # bad fields raise TypeError now, as on a Channel
        self.methods.make("basic.consume", (), fields)
        consumer = RecoveringConsumer(self, fields, callback)
        return from_coroutine(self._consume(consumer))

    async def _consume(self, consumer: RecoveringConsumer) -> RecoveringConsumer:
        while True:
            channel = await self._when_attached()
            try:
                await consumer._start(channel, {})
            except ConnectionClosed:
                if self._connection._closing or self._connection.failed is not None:
                    raise
                continue
            self._consumers[id(consumer)] = consumer
            return consumer

    def basic_cancel(self, consumer_tag: str, no_wait: bool = False) -> Deferred[Any]:
        """
        Cancel a consumer for good.
        """
        for consumer in list(self._consumers.values()):
            if consumer.consumer_tag == consumer_tag:
                consumer._end(ConsumerCancelled(f"consumer {consumer_tag} cancelled"))
        channel = self._channel
        if channel is None or channel.closed is not None:
            return succeed(None)
        return channel.basic_cancel(consumer_tag, no_wait=no_wait)

    # -- publishing ----------------------------------------------------------------

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
        Publish a message, as L{Channel.basic_publish} does; while the
        connection is down it waits (within C{max_held_bytes}) and goes out
        on the next one.  In confirm mode the L{Deferred} fires once the
        broker confirmed the message, on whichever connection.
        """
        body = _body_bytes(body)
        if self.closed is not None:
            return fail(self.closed)
        publish = _Publish(
            {
                "exchange": exchange,
                "routing_key": routing_key,
                "mandatory": mandatory,
                "immediate": immediate,
                **fields,
            },
            body,
            properties,
            AsyncioDeferred(),
        )
        channel = self._channel
        if channel is not None and channel.closed is None and not self._held:
            # the Channel raises for bad arguments at once
            self._send(channel, publish, raising=True)
            return publish.result
        try:
            self._check(publish)
        except LocalProtocolError as e:
            # as a Channel: a value the encoder refuses fails the publish
            return fail(e)
        if not self._connection._hold(publish.size, force=self._connection._held_bytes == 0):
            return fail(
                PublishBufferFull(
                    f"{self._connection._held_bytes} bytes of publishes wait for the "
                    f"connection (max_held_bytes={self._connection.max_held_bytes})"
                )
            )
        self._held.append(publish)
        return publish.result

    def _check(self, publish: _Publish) -> None:
        """
        Check a publish that is to wait as a L{Channel} would check it when
        sent: bad fields or properties raise C{TypeError} (or
        L{LocalProtocolError}) now rather than on the next connection.
        The properties are kept in their final form.
        """
        methods = self.methods
        # encoded on any channel id: the bits and values are checked too
        methods.make("basic.publish", (), publish.fields).encode_frame(1)
        if not isinstance(publish.properties, Properties):
            publish.properties = methods.properties_from(60, publish.properties or {})

    def _send(self, channel: Channel, publish: _Publish, raising: bool = False) -> None:
        try:
            sent = channel.basic_publish(
                body=publish.body, properties=publish.properties, **publish.fields
            )
        except Exception as e:
            if raising:
                raise
            publish.result.errback(e)
            return
        sent.addCallbacks(
            self._published,
            self._not_published,
            callbackArgs=(publish,),
            errbackArgs=(publish,),
        )

    @staticmethod
    def _published(_: object, publish: _Publish) -> None:
        publish.result.callback(None)

    def _not_published(self, failure: Failure, publish: _Publish) -> None:
        lost = (
            failure.check(ConnectionClosed)  # type: ignore[no-untyped-call]
            and not self._connection._closing
            and self._connection.failed is None
            and self.closed is None
        )
        if lost and (not self.confirm_mode or self._connection.republish):
            # held back and never written (outside confirm mode a publish
            # fails only so), or unconfirmed at the loss: sent again on the
            # next connection
            self._unconfirmed.append(publish)
            return
        publish.result.errback(failure)

    @property
    def confirm_mode(self) -> bool:
        """
        Whether the channel is in confirm mode.
        """
        return "confirm.select" in self._modes

    def close(self, reason: object = None) -> Deferred[Any]:
        """
        Close the channel for good.
        """
        channel = self._channel
        self._end(ChannelClosed(200, "channel closed by the client"))
        if channel is None or channel.closed is not None:
            return succeed(None)
        return channel.close(reason)

    channel_close = close


def connect_recovering(
    reactor: Any,
    brokers: BrokerList,
    on_event: Listener | None = None,
    **kwargs: Any,
) -> Deferred[RecoveringConnection]:
    """
    Connect to one of C{brokers} with a connection that heals itself.

    @param on_event: a listener for the connection's L{ConnectionEvent}s.
    @param kwargs: for L{RecoveringConnection} (C{retry_policy},
        C{republish}, connection parameters such as C{heartbeat}).
    @return: a L{Deferred} firing with the L{RecoveringConnection} once its
        first connection is set up, or failing with the error that ended it
        for good (refused credentials, a missing vhost).
    @raise ValueError: a bad URI or endpoint string.
    """
    connection = RecoveringConnection(reactor, brokers, **kwargs)
    if on_event is not None:
        connection.add_listener(on_event)
    return connection.start()
