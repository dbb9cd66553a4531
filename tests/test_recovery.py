# -*- test-case-name: tests.test_recovery -*-
"""
Tests for L{txamqp_next.recovery}: a connection that reconnects and sets
itself up again, against fake brokers on a L{Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import CapturedLog, flush_brokers
from txamqp_next._params import ConnectionParameters, Credentials
from txamqp_next.channel import ConsumerCancelled
from txamqp_next.endpoint import Broker
from txamqp_next.errors import (
    AuthenticationError,
    ChannelClosed,
    ConnectionClosed,
    LocalProtocolError,
    NoFreeChannel,
    NotAllowed,
    PreconditionFailed,
    PublishBufferFull,
)
from txamqp_next.message import Message
from txamqp_next.recovery import (
    ConnectionEvent,
    RecoveringChannel,
    RecoveringConnection,
    connect_recovering,
)
from txamqp_next.testing import MemoryBroker

PARAMS = ConnectionParameters(credentials=Credentials(), heartbeat=0)


class RecoveryCase(SynchronousTestCase):
    """
    A recovering connection to fake brokers sharing one clock, reconnecting
    after one second.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.brokers = [self.broker]
        self.events: list[ConnectionEvent] = []

    def connection(
        self, *brokers: MemoryBroker, params: ConnectionParameters = PARAMS, **kwargs: Any
    ) -> RecoveringConnection:
        """
        A started recovering connection to C{brokers} (this test's broker
        by default), with its events in C{self.events}.
        """
        fakes = brokers or (self.broker,)
        self.brokers.extend(b for b in fakes if b not in self.brokers)
        connection = RecoveringConnection(
            self.clock,
            [Broker(params, fake, f"fake{i}") for i, fake in enumerate(fakes)],
            retry_policy=lambda attempt: 1.0,
            **kwargs,
        )
        connection.add_listener(self.events.append)
        self.started = connection.start()
        self.flush()
        return connection

    def flush(self) -> None:
        """
        Let the client talk with every broker of this test until all are
        quiet.
        """
        flush_brokers(self.brokers)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def channel(self, connection: RecoveringConnection) -> RecoveringChannel:
        d = connection.open_channel()
        self.flush()
        channel: RecoveringChannel = self.successResultOf(d)
        return channel

    def result(self, d: Deferred[Any]) -> Any:
        self.flush()
        return self.successResultOf(d)

    def lose_and_recover(self) -> None:
        """
        The broker drops the connection; the client reconnects after its
        back-off.
        """
        self.broker.current.lose()
        self.flush()
        self.clock.advance(1)
        self.flush()


class ConnectTests(RecoveryCase):
    """
    The first connection, and events.
    """

    def test_connected(self) -> None:
        """
        C{start} fires with the connection once it is set up, and listeners
        hear C{connected} with the broker's name.
        """
        connection = self.connection()
        self.assertIs(self.successResultOf(self.started), connection)
        self.assertEqual(self.kinds(), ["connected"])
        self.assertEqual(self.events[0].broker, "fake0")
        self.assertIsNotNone(connection.connection)
        self.assertEqual(connection.broker.name, "fake0")  # type: ignore[union-attr]

    def test_channel_without_free_id(self) -> None:
        """
        A channel that cannot be opened (every channel id of the connection
        is in use) fails with NoFreeChannel and is forgotten: after a
        reconnection only the open channels are opened again.
        """
        self.broker = MemoryBroker(self.clock, channel_max=2)
        self.brokers = [self.broker]
        connection = self.connection()
        first, second = self.channel(connection), self.channel(connection)
        d = connection.open_channel()
        self.flush()
        self.failureResultOf(d, NoFreeChannel)
        self.lose_and_recover()
        self.assertEqual(self.kinds(), ["connected", "lost", "recovered"])
        self.assertTrue(first.is_open)
        self.assertTrue(second.is_open)
        opened = [name for name in self.broker.current.names() if name[1] == "channel.open"]
        self.assertEqual(len(opened), 2)

    def test_connect_recovering(self) -> None:
        """
        L{connect_recovering} builds, starts and reports in one call.
        """
        events: list[ConnectionEvent] = []
        d = connect_recovering(
            self.clock,
            [Broker(PARAMS, self.broker, "fake")],
            on_event=events.append,
            retry_policy=lambda attempt: 1.0,
        )
        self.flush()
        self.assertIsInstance(self.successResultOf(d), RecoveringConnection)
        self.assertEqual([e.kind for e in events], ["connected"])

    def test_waits_for_a_broker(self) -> None:
        """
        While the broker is down, C{start} waits and the client retries by
        its policy.
        """
        self.broker.accepting = False
        self.connection()
        self.assertNoResult(self.started)
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(self.broker.attempts, 3)
        self.broker.accepting = True
        self.clock.advance(1)
        self.flush()
        self.successResultOf(self.started)

    def test_failover(self) -> None:
        """
        A broker that is down is skipped for the next in the list, and
        after a loss the next attempt starts with the broker after the one
        lost.
        """
        first, second = self.broker, MemoryBroker(self.clock)
        first.accepting = False
        self.connection(first, second)
        self.successResultOf(self.started)
        self.assertEqual(self.events[0].broker, "fake1")
        first.accepting = True
        second.current.lose()
        self.flush()
        self.clock.advance(1)
        self.flush()
        self.assertEqual(self.kinds(), ["connected", "lost", "recovered"])
        self.assertEqual(self.events[2].broker, "fake0")

    def test_when_connected_after_loss(self) -> None:
        """
        C{when_connected} asked as the connection is lost (from a listener
        of C{lost}, or an errback) waits for the next connection, never
        returning the dead one.
        """
        connection = self.connection()
        first = connection.connection
        waits: list[Deferred[Any]] = []

        def lost(event: ConnectionEvent) -> None:
            if event.kind == "lost":
                waits.append(connection.when_connected())

        connection.add_listener(lost)
        self.broker.current.lose()
        self.flush()
        [d] = waits
        self.assertNoResult(d)
        self.assertNoResult(connection.when_connected())
        self.clock.advance(1)
        self.flush()
        second = self.successResultOf(d)
        self.assertIsNot(second, first)
        self.assertIsNone(second.closed)


class PermanentErrorTests(RecoveryCase):
    """
    Errors that retrying cannot mend end the connection with one log line.
    """

    def assertGivesUp(self, error: type[Exception]) -> RecoveringConnection:
        log = CapturedLog(self)
        connection = self.connection()
        self.failureResultOf(self.started, error)
        self.assertEqual(self.kinds(), ["failed"])
        self.assertIsInstance(self.events[0].reason, error)
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.flush()
        self.assertEqual(self.broker.attempts, attempts)
        self.failureResultOf(connection.when_connected(), error)
        self.failureResultOf(connection.open_channel(), error)
        errors = [formatEvent(e) for e in log.events if e["log_level"].name == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("giving up", errors[0])
        return connection

    def test_refused_login(self) -> None:
        """
        Refused credentials (403 at login) end the connection.
        """
        self.broker.users["guest"] = "another password"
        connection = self.assertGivesUp(AuthenticationError)
        self.assertIsInstance(connection.failed, AuthenticationError)

    def test_missing_vhost(self) -> None:
        """
        A missing virtual host (530 at C{connection.open}) ends it.
        """
        del self.broker.vhosts["/"]
        self.assertGivesUp(NotAllowed)

    def test_inequivalent_on_recovery(self) -> None:
        """
        A declaration the broker refuses when it is made again (the queue
        exists with other arguments) ends the connection; its channels
        close with that error.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.result(channel.queue_declare(queue="jobs", durable=True))
        self.broker.delete_queue("jobs")
        self.broker.declare_queue("jobs", durable=True, arguments={"x-max-length": 1})
        self.lose_and_recover()
        self.assertEqual(self.kinds(), ["connected", "lost", "failed"])
        self.assertIsInstance(connection.failed, PreconditionFailed)
        self.assertIsInstance(channel.closed, PreconditionFailed)
        self.failureResultOf(channel.basic_publish(routing_key="jobs", body=b"x"))

    def test_other_errors_retry(self) -> None:
        """
        Errors not in C{permanent_errors} are retried.
        """
        self.broker.users["guest"] = "another password"
        self.connection(permanent_errors=())
        self.assertNoResult(self.started)
        self.broker.users["guest"] = "guest"
        self.clock.advance(1)
        self.flush()
        self.successResultOf(self.started)


class TopologyTests(RecoveryCase):
    """
    What the channels declared is declared again on the next connection.
    """

    def test_declarations_replayed(self) -> None:
        """
        Exchanges, queues and bindings are declared again in order; a
        queue the server named gets a new name, its bindings and consumers
        follow, and C{recovered} and C{queue_name} tell the new name.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.result(channel.exchange_declare(exchange="ex", type="topic"))
        named = self.result(channel.queue_declare(queue="named", durable=True))
        anonymous = self.result(channel.queue_declare(queue="", exclusive=True))
        self.result(channel.queue_bind(queue=anonymous.queue, exchange="ex", routing_key="#"))
        consumer = self.result(channel.basic_consume(queue=anonymous.queue, callback=print))
        self.assertEqual(named.queue, "named")
        old = anonymous.queue
        self.lose_and_recover()
        self.assertEqual(self.kinds(), ["connected", "lost", "recovered"])
        new = connection.queue_name(old)
        self.assertNotEqual(new, old)
        self.assertEqual(self.events[-1].renamed, {old: new})
        self.assertEqual(consumer.queue_name, new)
        declared = [
            (m.NAME, getattr(m, "exchange", None), getattr(m, "queue", None))
            for _, m in self.broker.current.methods
            if m.NAME in ("exchange.declare", "queue.declare", "queue.bind", "basic.consume")
        ]
        self.assertEqual(
            declared,
            [
                ("exchange.declare", "ex", None),
                ("queue.declare", None, "named"),
                ("queue.declare", None, ""),
                ("queue.bind", "ex", new),
                ("basic.consume", None, new),
            ],
        )

    def test_routing_key_follows_rename(self) -> None:
        """
        A binding whose routing key is the server-named queue's old name
        (how reply queues are bound) is made again with the new name; other
        routing keys are kept.
        """
        connection = self.connection()
        channel = self.channel(connection)
        old = self.result(channel.queue_declare(queue="", exclusive=True)).queue
        self.result(channel.queue_bind(queue=old, exchange="amq.direct", routing_key=old))
        self.result(channel.queue_bind(queue=old, exchange="amq.topic", routing_key="a.#"))
        self.lose_and_recover()
        new = connection.queue_name(old)
        binds = [
            (m.exchange, m.queue, m.routing_key)
            for _, m in self.broker.current.methods
            if m.NAME == "queue.bind"
        ]
        self.assertEqual(binds, [("amq.direct", new, new), ("amq.topic", new, "a.#")])
        self.lose_and_recover()
        newer = connection.queue_name(old)
        binds = [m.routing_key for _, m in self.broker.current.methods if m.NAME == "queue.bind"]
        self.assertEqual(binds, [newer, "a.#"])

    def test_bad_arguments_at_once(self) -> None:
        """
        Bad fields, properties or methods raise at once, as on a
        L{Channel}, even while the connection is down (nothing waits to
        fail on the next connection).
        """
        connection = self.connection()
        channel = self.channel(connection)
        for down in (False, True):
            if down:
                self.broker.current.lose()
                self.flush()
            self.assertRaises(TypeError, channel.queue_declare, queue="q", colour="red")
            self.assertRaises(TypeError, channel.basic_consume, queue="q", colour="red")
            self.assertRaises(
                TypeError, channel.basic_publish, routing_key="q", properties={"colour": 1}
            )
            self.failureResultOf(
                channel.basic_publish(routing_key="q", mandatory="no"), LocalProtocolError
            )
            self.assertRaises(AttributeError, getattr, channel, "queue_explode")
        self.assertEqual(connection.held_bytes, 0)

    def test_deletions_forgotten(self) -> None:
        """
        A deleted queue or exchange, and an unbound binding, are not
        declared again.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.result(channel.exchange_declare(exchange="gone", type="direct"))
        self.result(channel.queue_declare(queue="q1"))
        self.result(channel.queue_declare(queue="q2"))
        self.result(channel.queue_bind(queue="q1", exchange="gone", routing_key="a"))
        self.result(channel.queue_bind(queue="q2", exchange="amq.direct", routing_key="b"))
        self.result(channel.queue_bind(queue="q2", exchange="amq.direct", routing_key="c"))
        self.result(channel.queue_delete(queue="q1"))
        self.result(channel.exchange_delete(exchange="gone"))
        self.result(channel.queue_unbind(queue="q2", exchange="amq.direct", routing_key="b"))
        self.lose_and_recover()
        replayed = [
            (m.NAME, getattr(m, "queue", None), getattr(m, "routing_key", None))
            for _, m in self.broker.current.methods
            if m.NAME.startswith(("queue.", "exchange."))
        ]
        self.assertEqual(replayed, [("queue.declare", "q2", None), ("queue.bind", "q2", "c")])

    def test_passive_not_recorded(self) -> None:
        """
        A passive declaration only checks: it is not made again.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.broker.declare_queue("q")
        self.result(channel.queue_declare(queue="q", passive=True))
        self.lose_and_recover()
        self.assertNotIn((0, "queue.declare"), self.broker.current.names())
        self.assertNotIn((1, "queue.declare"), self.broker.current.names())

    def test_binding_to_vanished_exchange(self) -> None:
        """
        A binding to an exchange declared elsewhere that is gone when the
        connection is set up again is dropped with a log line; the rest is
        declared and the connection recovers.
        """
        log = CapturedLog(self)
        connection = self.connection()
        channel = self.channel(connection)
        self.result(channel.queue_declare(queue="q"))
        self.broker.declare_exchange("elsewhere")
        self.result(channel.queue_bind(queue="q", exchange="elsewhere", routing_key="k"))
        self.result(channel.queue_bind(queue="q", exchange="amq.direct", routing_key="k"))
        del self.broker.exchanges["elsewhere"]
        self.lose_and_recover()
        self.assertEqual(self.kinds(), ["connected", "lost", "recovered"])
        self.assertIn("dropped", " ".join(t for t in log.texts() if "binding" in t))
        self.lose_and_recover()
        binds = [m.exchange for _, m in self.broker.current.methods if m.NAME == "queue.bind"]
        self.assertEqual(binds, ["amq.direct"])

    def test_modes_restored(self) -> None:
        """
        The channel is opened again with its QoS and confirm mode.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.result(channel.basic_qos(prefetch_count=7))
        self.result(channel.confirm_select())
        self.lose_and_recover()
        names = [name for _, name in self.broker.current.names()]
        self.assertEqual(names[-3:], ["channel.open", "basic.qos", "confirm.select"])
        qos = [m for _, m in self.broker.current.methods if m.NAME == "basic.qos"]
        self.assertEqual(qos[0].prefetch_count, 7)
        self.assertTrue(channel.confirm_mode)
        self.assertIsNotNone(channel.channel.confirms)  # type: ignore[union-attr]


class ConsumerTests(RecoveryCase):
    """
    Consumers start again with the same callback; acks never cross
    connections.
    """

    def setUp(self) -> None:
        super().setUp()
        self.connection_ = self.connection()
        self.channel_ = self.channel(self.connection_)
        self.result(self.channel_.queue_declare(queue="q"))
        self.messages: list[Message] = []
        self.consumer = self.result(
            self.channel_.basic_consume(queue="q", callback=self.messages.append)
        )

    def deliver(self, body: bytes) -> None:
        """
        Publish C{body} to the consumer's queue and let it be delivered.
        """
        self.assertEqual(self.broker.publish("q", body), ["q"])
        self.flush()

    def test_same_callback(self) -> None:
        """
        Deliveries on the next connection reach the same callback, under
        the consumer's new tag.
        """
        self.deliver(b"before")
        self.successResultOf(self.messages[0].ack())
        old_tag = self.consumer.consumer_tag
        self.lose_and_recover()
        self.assertNotEqual(self.consumer.consumer_tag, old_tag)
        self.deliver(b"after")
        self.assertEqual([m.body for m in self.messages], [b"before", b"after"])

    def test_stale_ack_dropped(self) -> None:
        """
        An ack for a delivery of a lost connection is dropped with a log
        line and never sent on the new connection; a delivery of the new
        connection is acked there.
        """
        log = CapturedLog(self)
        self.deliver(b"old")
        self.broker.current.lose()
        self.flush()
        self.successResultOf(self.messages[0].ack())
        self.clock.advance(1)
        self.flush()
        self.successResultOf(self.messages[0].nack())
        # the broker redelivers the unacked message (delivery 1 there)
        self.assertEqual([(m.body, m.redelivered) for m in self.messages[1:]], [(b"old", True)])
        self.deliver(b"new")
        self.successResultOf(self.messages[2].ack())
        self.flush()
        self.assertEqual(
            [(number, name, m.delivery_tag) for number, name, m in self.broker.settled],
            [(2, "basic.ack", 2)],
        )
        dropped = [t for t in log.texts() if "dropped" in t]
        self.assertEqual(len(dropped), 2, dropped)
        self.assertIn("delivery 1", dropped[0])

    def test_ack_as_the_broker_closes(self) -> None:
        """
        A callback that acks a delivery that came in the same read as the
        broker's C{connection.close} sees its ack dropped with a log line,
        not a failure.
        """
        log = CapturedLog(self)
        acks: list[Deferred[Any]] = []
        self.consumer.callback = lambda message: acks.append(message.ack())
        # the delivery and the close reach the client in one read
        self.broker.publish("q", b"last")
        self.broker.close_connections(320, "CONNECTION_FORCED - shutdown")
        self.flush()
        [ack] = acks
        self.assertIsNone(self.successResultOf(ack))
        self.assertEqual(self.kinds(), ["connected", "lost"])
        self.assertEqual(len([t for t in log.texts() if "dropped" in t]), 1)
        self.assertEqual([t for t in log.texts() if "failed" in t], [])

    def test_iterate_without_callback(self) -> None:
        """
        A consumer without a callback queues its messages across
        connections.
        """
        self.result(self.channel_.queue_declare(queue="q2"))
        consumer = self.result(self.channel_.basic_consume(queue="q2", no_ack=True))
        self.broker.publish("q2", b"one")
        self.flush()
        self.lose_and_recover()
        self.broker.publish("q2", b"two")
        self.flush()
        first = self.successResultOf(consumer.queue.get())
        second = self.successResultOf(consumer.queue.get())
        self.assertEqual((first.body, second.body), (b"one", b"two"))

    def test_consumer_of_vanished_queue(self) -> None:
        """
        A consumer whose queue (declared elsewhere) is gone when the
        connection is set up again ends, as if the broker cancelled it; the
        channel's other consumers start again.
        """
        self.broker.declare_queue("external")
        external = self.result(self.channel_.basic_consume(queue="external", callback=print))
        self.broker.current.lose()
        self.broker.delete_queue("external")
        self.flush()
        self.clock.advance(1)
        self.flush()
        self.assertEqual(self.kinds(), ["connected", "lost", "recovered"])
        self.assertIsInstance(self.successResultOf(external.when_ended()), ConsumerCancelled)
        self.assertEqual(self.channel_.consumers, [self.consumer])
        self.deliver(b"still")
        self.assertEqual([m.body for m in self.messages], [b"still"])

    def test_cancel_for_good(self) -> None:
        """
        A cancelled consumer does not start again.
        """
        self.result(self.consumer.cancel())
        self.assertIsNotNone(self.successResultOf(self.consumer.when_ended()))
        self.lose_and_recover()
        self.assertNotIn("basic.consume", [n for _, n in self.broker.current.names()])
        self.assertEqual(self.channel_.consumers, [])

    def test_broker_closed_channel_stays_closed(self) -> None:
        """
        A channel the broker closes (here, consuming a missing queue) is
        closed for good, as a L{Channel} is, and is not opened again; the
        connection and its other channels go on.
        """
        other = self.channel(self.connection_)
        d = other.basic_consume(queue="missing", callback=print)
        self.flush()
        self.failureResultOf(d, ChannelClosed)
        self.assertIsInstance(other.closed, ChannelClosed)
        self.lose_and_recover()
        self.assertEqual(self.kinds(), ["connected", "lost", "recovered"])
        self.assertIsNone(self.channel_.closed)
        self.assertEqual(
            [n for _, n in self.broker.current.names()].count("channel.open"),
            1 + 1,  # the topology channel and self.channel_
        )


class PublishTests(RecoveryCase):
    """
    Publishes wait while the connection is down; unconfirmed ones go again.
    """

    def test_held_while_down(self) -> None:
        """
        Publishes made while the connection is down go out in order on the
        next one.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.broker.current.lose()
        self.flush()
        results = [channel.basic_publish(routing_key="q", body=b"%d" % i) for i in range(3)]
        for d in results:
            self.assertNoResult(d)
        self.clock.advance(1)
        self.flush()
        for d in results:
            self.successResultOf(d)
        self.assertEqual([p.body for p in self.broker.published], [b"0", b"1", b"2"])
        self.assertEqual({p.connection for p in self.broker.published}, {2})

    def test_memory_bound(self) -> None:
        """
        Past C{max_held_bytes}, counted over all channels, a publish fails
        at once with L{PublishBufferFull}; a publish larger than the bound
        waits when nothing else does.
        """
        connection = self.connection(params=PARAMS.replace(max_held_bytes=10))
        one, two = self.channel(connection), self.channel(connection)
        self.broker.current.lose()
        self.flush()
        large = one.basic_publish(routing_key="q", body=b"x" * 20)
        self.assertNoResult(large)
        self.failureResultOf(two.basic_publish(routing_key="q", body=b"y"), PublishBufferFull)
        self.clock.advance(1)
        self.flush()
        self.successResultOf(large)
        self.broker.current.lose()
        self.flush()
        first = one.basic_publish(routing_key="q", body=b"a" * 6)
        second = two.basic_publish(routing_key="q", body=b"b" * 4)
        self.failureResultOf(two.basic_publish(routing_key="q", body=b"c"), PublishBufferFull)
        self.clock.advance(1)
        self.flush()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(connection.held_bytes, 0)
        self.assertEqual([p.body for p in self.broker.published], [b"x" * 20, b"a" * 6, b"b" * 4])

    def test_bad_body_at_once(self) -> None:
        """
        A body that is not bytes fails at once, even while down.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.broker.current.lose()
        self.flush()
        self.assertRaises(TypeError, channel.basic_publish, routing_key="q", body={"a": 1})

    def test_unconfirmed_republished(self) -> None:
        """
        In confirm mode, publishes unconfirmed at the loss are sent again on
        the next connection, before those made while down, and fire when
        the new connection's broker confirms them.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.result(channel.confirm_select())
        self.broker.hold_confirms = True
        confirmed = channel.basic_publish(routing_key="q", body=b"a")
        unconfirmed = channel.basic_publish(routing_key="q", body=b"b")
        self.flush()
        self.broker.current.confirm(1, 1)
        self.flush()
        self.successResultOf(confirmed)
        self.broker.current.lose()
        self.flush()
        while_down = channel.basic_publish(routing_key="q", body=b"c")
        self.broker.hold_confirms = False
        self.clock.advance(1)
        self.flush()
        self.assertEqual(self.events[-1].republished, 1)
        self.assertEqual(connection.held_bytes, 0)
        self.successResultOf(unconfirmed)
        self.successResultOf(while_down)
        self.assertEqual(
            [(p.connection, p.body) for p in self.broker.published],
            [(1, b"a"), (1, b"b"), (2, b"b"), (2, b"c")],
        )

    def test_no_republish(self) -> None:
        """
        With C{republish=False}, unconfirmed publishes fail with the
        connection's error (at most once); later ones still go.
        """
        connection = self.connection(republish=False)
        channel = self.channel(connection)
        self.result(channel.confirm_select())
        self.broker.hold_confirms = True
        unconfirmed = channel.basic_publish(routing_key="q", body=b"b")
        self.flush()
        self.broker.current.lose()
        self.flush()
        self.failureResultOf(unconfirmed, ConnectionClosed)
        later = channel.basic_publish(routing_key="q", body=b"c")
        self.broker.hold_confirms = False
        self.clock.advance(1)
        self.flush()
        self.successResultOf(later)
        self.assertEqual(self.events[-1].republished, 0)


class CloseTests(RecoveryCase):
    """
    Closing ends the connection and reconnection.
    """

    def test_close(self) -> None:
        """
        C{close} closes the connection, stops reconnecting, fails waiting
        publishes with L{ConnectionClosed} and tells C{closed}.
        """
        connection = self.connection()
        channel = self.channel(connection)
        d = connection.close()
        self.flush()
        self.successResultOf(d)
        self.assertEqual(self.kinds(), ["connected", "closed"])
        self.assertIn((0, "connection.close"), self.broker.current.names())
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.assertEqual(self.broker.attempts, attempts)
        self.failureResultOf(channel.basic_publish(routing_key="q", body=b"x"), ConnectionClosed)
        self.failureResultOf(connection.open_channel(), ConnectionClosed)

    def test_close_while_down(self) -> None:
        """
        Closed while down, publishes waiting fail and no reconnection is
        made.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.broker.current.lose()
        self.flush()
        waiting = channel.basic_publish(routing_key="q", body=b"x")
        d = connection.close()
        self.flush()
        self.successResultOf(d)
        self.failureResultOf(waiting, ConnectionClosed)
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.flush()
        self.assertEqual(self.broker.attempts, attempts)

    def test_channel_close(self) -> None:
        """
        A channel the application closes is not opened again.
        """
        connection = self.connection()
        channel = self.channel(connection)
        self.result(channel.close())
        self.assertIsInstance(channel.closed, ChannelClosed)
        self.lose_and_recover()
        self.assertNotIn("channel.open", [n for _, n in self.broker.current.names()])
