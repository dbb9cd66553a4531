# -*- test-case-name: tests.test_testing -*-
"""
L{MemoryBroker}: an in-memory AMQP 0-9-1 broker for unit tests, in the
manner of treq's C{StubTreq}.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp_next._deferred import fail, succeed
from txamqp_next._methods import methods_for
from txamqp_next.connection import AMQPConnection
from txamqp_next.spec import load
from txamqp_next.testing._model import Binding, Exchange, Message, Queue, VirtualHost
from txamqp_next.testing._server import Published, ServerConnection, ServerConsumer

__all__ = ["MemoryBroker", "MemoryTransport"]

#: what L{MemoryBroker.close_connections} says by default, as RabbitMQ does
#: when an operator closes a connection
FORCED = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"


class MemoryTransport:
    """
    The client's transport to a L{MemoryBroker}: what the client writes goes
    to the broker at once; what the broker sends waits for
    L{MemoryBroker.flush}.

    @ivar disconnecting: whether the client asked to close it.
    """

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        if not self.disconnecting:
            self.connection.received(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.connection.broker.drop(self.connection)

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.connection.broker.drop(self.connection, ConnectionLost)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        The broker never pushes back.
        """

    def unregisterProducer(self) -> None:
        """
        See L{registerProducer}.
        """

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 5672)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000 + self.connection.number)


@implementer(IStreamClientEndpoint)
class MemoryBroker:
    """
    An AMQP 0-9-1 broker in memory, speaking frames to real clients
    (L{AMQPConnection}, C{AMQClient}, the recovering connection and the
    services) with no socket, on a L{Clock}.

    It routes as RabbitMQ does (direct, fanout, topic and headers exchanges,
    the default exchange and the C{amq.*} ones), holds queues and their
    messages, delivers to consumers round-robin within their prefetch
    counts, takes acks, nacks and rejects, confirms publishes, returns
    unroutable mandatory ones, and refuses bad requests with RabbitMQ's
    reply codes and texts, closing only the channel for a soft error.

    Nothing happens behind a test's back: what the client writes reaches the
    broker at once, but what the broker sends waits until L{flush}, which
    lets both sides talk until neither has anything more to say (and runs
    the calls due on the clock now, as a reactor turn would).  Time passes
    only when the test advances the clock.

    The broker is also an C{IStreamClientEndpoint}: give it to a
    C{ClientService}, a recovering connection or a service as the endpoint
    that reaches it.

    @ivar clock: the clock the broker and its clients run on.
    @ivar vhosts: virtual host name to its L{VirtualHost}.
    @ivar users: user name to password, for logging in.
    @ivar accepting: whether new connections are accepted; when C{False}
        L{connect} fails with C{ConnectionRefusedError}.
    @ivar attempts: how many connections were attempted.
    @ivar connections: the broker's side of every connection made, oldest
        first (see L{live} for those still up).
    @ivar published: every message clients published, as L{Published}.
    @ivar returned: the mandatory publishes returned unroutable.
    @ivar settled: C{(connection number, method name, method)} for each
        C{basic.ack}, C{basic.nack} and C{basic.reject} clients sent.
    @ivar hold_confirms: when set, confirms are held until the test sends
        them with L{ServerConnection.confirm}.
    @ivar nack_publishes: when set, publishes are confirmed with
        C{basic.nack} instead of C{basic.ack}.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        users: Mapping[str, str] | None = None,
        vhosts: tuple[str, ...] = ("/",),
        frame_max: int = 131072,
        channel_max: int = 2047,
        heartbeat: int = 0,
        server_properties: Mapping[str, Any] | None = None,
    ) -> None:
        """
        @param clock: the clock to run on; a new one when omitted.
        @param users: user names and passwords (C{guest}/C{guest} when
            omitted).
        @param vhosts: the virtual hosts that exist.
        @param frame_max: the largest frame the broker proposes in
            C{connection.tune}.
        @param channel_max: the highest channel id it proposes.
        @param heartbeat: the heartbeat interval it proposes, in seconds
            (C{0}: none unless the client asks).  With heartbeats on, the
            broker sends one each interval of the clock.
        @param server_properties: what it says of itself in
            C{connection.start}.
        """
        self.clock = clock if clock is not None else Clock()
        self.users = dict(users if users is not None else {"guest": "guest"})
        self.vhosts = {name: VirtualHost(name) for name in vhosts}
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.heartbeat = heartbeat
        self.server_properties: dict[str, Any] = {
            "product": "txamqp_next.testing.MemoryBroker",
            "capabilities": {
                "publisher_confirms": True,
                "exchange_exchange_bindings": True,
                "basic.nack": True,
                "consumer_cancel_notify": True,
                "per_consumer_qos": True,
                "connection.blocked": False,
                "authentication_failure_close": True,
            },
        }
        self.server_properties.update(server_properties or {})
        self.accepting = True
        self.attempts = 0
        self.connections: list[ServerConnection] = []
        self.published: list[Published] = []
        self.returned: list[Published] = []
        self.settled: list[tuple[int, str, Any]] = []
        self.hold_confirms = False
        self.nack_publishes = False
        #: the source of server-generated names
        self.counter = itertools.count(1)
        self._ending: dict[ServerConnection, type[Exception]] = {}
        self._methods = methods_for(load())

    # -- connecting ------------------------------------------------------------

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        """
        Connect a client built by C{protocolFactory} (C{IStreamClientEndpoint}).

        @return: a L{Deferred} that fires with the protocol once connected
            (the handshake goes on at the next L{flush}), or fails with
            C{ConnectionRefusedError} while L{accepting} is C{False}.
        """
        self.attempts += 1
        if not self.accepting:
            return fail(
                ConnectionRefusedError(  # type: ignore[no-untyped-call]
                    "the memory broker refuses connections"
                )
            )
        protocol = protocolFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5672))
        if protocol is None:
            return fail(
                ConnectionRefusedError(  # type: ignore[no-untyped-call]
                    "the protocol factory built no protocol"
                )
            )
        self._attach(protocol)
        return succeed(protocol)

    def open_connection(self, **parameters: Any) -> Deferred[AMQPConnection]:
        """
        Connect a new L{AMQPConnection} on the broker's clock and take it
        through the handshake.

        @param parameters: for L{AMQPConnection} (C{credentials}, C{vhost},
            C{heartbeat}, ...); it logs in as guest by default.
        @return: a L{Deferred} that fires with the open connection, already
            (the handshake is flushed); it fails as the client's
            C{when_open} does when the broker refuses the login (403) or the
            virtual host (530), and with C{ConnectionRefusedError} while
            L{accepting} is C{False}.
        """
        self.attempts += 1
        if not self.accepting:
            return fail(
                ConnectionRefusedError(  # type: ignore[no-untyped-call]
                    "the memory broker refuses connections"
                )
            )
        client = AMQPConnection(clock=self.clock, **parameters)
        self._attach(client)
        opened: Deferred[AMQPConnection] = client.when_open()
        self.flush()
        return opened

    def _attach(self, protocol: Any) -> ServerConnection:
        connection = ServerConnection(self, len(self.connections) + 1, protocol)
        self.connections.append(connection)
        protocol.makeConnection(MemoryTransport(connection))
        return connection

    # -- pumping ---------------------------------------------------------------

    def flush(self, rounds: int = 1000) -> None:
        """
        Let the clients and the broker talk until neither has more to say:
        deliver what the broker sent, end the transports that were closed,
        and run the clock's calls due now (C{advance(0)}), in rounds.

        @param rounds: the most rounds before giving up.
        @raise RuntimeError: they still talk after C{rounds} rounds.
        """
        for _ in range(rounds):
            progressed = False
            if any(call.getTime() <= self.clock.seconds() for call in self.clock.getDelayedCalls()):
                self.clock.advance(0)
                progressed = True
            for connection in list(self.connections):
                if connection.ended:
                    continue
                if connection.outbox:
                    data = b"".join(connection.outbox)
                    connection.outbox.clear()
                    connection.protocol.dataReceived(data)
                    progressed = True
                reason = self._ending.pop(connection, None)
                if reason is not None:
                    self._end(connection, reason)
                    progressed = True
            if not progressed:
                return
        raise RuntimeError(f"the memory broker and its clients still talk after {rounds} rounds")

    def drop(self, connection: ServerConnection, reason: type[Exception] = ConnectionDone) -> None:
        """
        End C{connection}'s transport at the next L{flush}, after what the
        broker sent on it is delivered (the client or the broker closed it).

        @param reason: the exception the client's C{connectionLost} gets.
        """
        if not connection.ended:
            self._ending.setdefault(connection, reason)

    def _end(self, connection: ServerConnection, reason: type[Exception]) -> None:
        connection._end_session()
        connection.ended = True
        connection.outbox.clear()
        connection.protocol.connectionLost(Failure(reason()))  # type: ignore[no-untyped-call]

    # -- faults on demand --------------------------------------------------------

    @property
    def live(self) -> list[ServerConnection]:
        """
        The connections whose transport is still up.
        """
        return [c for c in self.connections if not c.ended]

    @property
    def current(self) -> ServerConnection:
        """
        The latest connection made.

        @raise IndexError: none was.
        """
        return self.connections[-1]

    def lose_connections(self, reason: type[Exception] = ConnectionLost) -> None:
        """
        Every live connection drops at once, as when the network fails: the
        clients' C{connectionLost} gets C{reason}, nothing is said first.
        """
        for connection in self.live:
            self._ending.pop(connection, None)
            self._end(connection, reason)

    def lose(self, connection: ServerConnection, reason: type[Exception] = ConnectionLost) -> None:
        """
        One connection drops at once (see L{lose_connections}).
        """
        if not connection.ended:
            self._ending.pop(connection, None)
            self._end(connection, reason)

    def close_connections(self, reply_code: int = 320, reply_text: str = FORCED) -> None:
        """
        Close every live connection from the broker's side with
        C{connection.close} (320 C{CONNECTION_FORCED} by default); the
        transports end when the clients answer, at the next L{flush}.
        """
        for connection in self.live:
            connection.close(reply_code, reply_text)

    def stop(self) -> None:
        """
        The broker goes down: every connection drops and new ones are
        refused until L{accepting} is set again.
        """
        self.accepting = False
        self.lose_connections()
        self.flush()

    def cancel_consumers(self, queue: str, vhost: str = "/") -> None:
        """
        Cancel every consumer of C{queue} from the broker's side, as
        RabbitMQ does when a queue's node goes away: each client that
        advertised C{consumer_cancel_notify} gets a C{basic.cancel}.
        """
        for consumer in list(self.vhosts[vhost].queue(queue).consumers):
            consumer.channel.connection.cancel_consumer(consumer)

    # -- state -----------------------------------------------------------------

    @property
    def queues(self) -> dict[str, Queue]:
        """
        The queues of virtual host C{/}, by name.
        """
        return self.vhosts["/"].queues

    @property
    def exchanges(self) -> dict[str, Exchange]:
        """
        The exchanges of virtual host C{/}, by name.
        """
        return self.vhosts["/"].exchanges

    def declare_queue(self, name: str, vhost: str = "/", **options: Any) -> Queue:
        """
        Create a queue (or return the one there), as a test's set-up.

        @param options: C{durable}, C{exclusive}, C{auto_delete},
            C{arguments} of the new queue.
        """
        queues = self.vhosts[vhost].queues
        if name not in queues:
            queues[name] = Queue(name, **options)
        return queues[name]

    def declare_exchange(
        self, name: str, type: str = "direct", vhost: str = "/", **options: Any
    ) -> Exchange:
        """
        Create an exchange (or return the one there), as a test's set-up.

        @param options: C{durable}, C{auto_delete}, C{internal},
            C{arguments} of the new exchange.
        """
        exchanges = self.vhosts[vhost].exchanges
        if name not in exchanges:
            exchanges[name] = Exchange(name, type, **options)
        return exchanges[name]

    def bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        vhost: str = "/",
    ) -> None:
        """
        Bind C{queue} to C{exchange}, as a test's set-up.
        """
        host = self.vhosts[vhost]
        host.queue(queue)
        binding = Binding(queue, routing_key, tuple(sorted((arguments or {}).items())))
        bindings = host.exchange(exchange).bindings
        if binding not in bindings:
            bindings.append(binding)

    def delete_queue(self, name: str, vhost: str = "/") -> None:
        """
        Delete a queue with its messages and bindings; its consumers are
        cancelled (see L{cancel_consumers}).
        """
        host = self.vhosts[vhost]
        queue = host.queues.pop(name, None)
        if queue is None:
            return
        for consumer in list(queue.consumers):
            consumer.channel.connection.cancel_consumer(consumer)
        host.unbind_destination(name, False)

    def publish(
        self,
        routing_key: str,
        body: bytes,
        exchange: str = "",
        properties: Mapping[str, Any] | None = None,
        vhost: str = "/",
    ) -> list[str]:
        """
        Publish a message from outside (another application, say) and
        deliver it to consumers at the next L{flush}.

        @param properties: its C{basic} properties by name (C{headers},
            C{reply_to}, C{correlation_id}, ...).
        @return: the names of the queues it went to.
        @raise KeyError: C{exchange} does not exist.
        """
        host = self.vhosts[vhost]
        if exchange not in host.exchanges:
            raise KeyError(f"no exchange {exchange!r} in vhost {vhost!r}")
        props = self._methods.properties_from(60, dict(properties or {}))
        queues = host.route(exchange, routing_key, dict(properties or {}).get("headers"))
        for queue in queues:
            queue.messages.append(Message(exchange, routing_key, props, body))
        self.dispatch()
        return [q.name for q in queues]

    # -- plumbing for ServerConnection -------------------------------------------

    def remove_consumer(self, consumer: ServerConsumer) -> None:
        """
        Forget C{consumer}; its queue goes if it is auto-delete and this was
        its last consumer.
        """
        consumer.channel.consumers.pop(consumer.tag, None)
        queue = consumer.queue
        if consumer in queue.consumers:
            queue.consumers.remove(consumer)
        if queue.auto_delete and queue.had_consumers and not queue.consumers:
            for vhost in self.vhosts.values():
                if vhost.queues.get(queue.name) is queue:
                    self.delete_queue(queue.name, vhost.name)

    def dispatch(self) -> None:
        """
        Deliver ready messages to consumers that can take them, round-robin
        over each queue's consumers.
        """
        for vhost in self.vhosts.values():
            for queue in list(vhost.queues.values()):
                self._dispatch_queue(queue)

    def _dispatch_queue(self, queue: Queue) -> None:
        while queue.messages and queue.consumers:
            ready = [
                c
                for c in queue.consumers
                if not c.channel.closing and not c.channel.connection.closing and c.can_take()
            ]
            if not ready:
                return
            consumer = ready[0]
            # the consumer served goes to the back of the line
            queue.consumers.remove(consumer)
            queue.consumers.append(consumer)
            consumer.channel.deliver(consumer, queue.messages.popleft())
