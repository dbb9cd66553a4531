# -*- test-case-name: tests.test_stats -*-
"""
Tests for the counters of L{txamqp_next.stats} (C{Channel.stats},
C{AMQPConnection.stats}, C{RecoveringConnection.stats}) and the structured
log events of connection state changes, against scripted brokers on a
L{Clock}.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import LogEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import PASSWORD, Broker, CapturedLog, open_broker
from txamqp_next import errors
from txamqp_next._connection import Credentials
from txamqp_next._params import ConnectionParameters
from txamqp_next.endpoint import Broker as BrokerAddress
from txamqp_next.message import Message
from txamqp_next.protocol import AMQClient
from txamqp_next.recovery import RecoveringConnection
from txamqp_next.stats import (
    CHANNEL_COUNTERS,
    CONNECTION_COUNTERS,
    ChannelStats,
    ConnectionStats,
    sum_channels,
    sum_connections,
)
from txamqp_next.testing import MemoryBroker


def amqp_events(log: CapturedLog, name: str) -> list[LogEvent]:
    """
    The captured log events whose C{amqp_event} is C{name}.
    """
    return [e for e in log.events if e.get("amqp_event") == name]


class SnapshotTests(SynchronousTestCase):
    """
    The snapshot types and their sums.
    """

    def test_frozen(self) -> None:
        """
        A snapshot cannot be changed.
        """
        stats = ChannelStats(published=1)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            stats.published = 2  # type: ignore[misc]

    def test_connection_has_every_channel_counter(self) -> None:
        """
        Every channel counter is a connection counter too, by the same name.
        """
        self.assertEqual(CONNECTION_COUNTERS[: len(CHANNEL_COUNTERS)], CHANNEL_COUNTERS)
        self.assertNotIn("blocked", CONNECTION_COUNTERS)

    def test_sum_channels(self) -> None:
        """
        Channel snapshots add up counter by counter.
        """
        total = sum_channels(
            [ChannelStats(published=1, acked=2), ChannelStats(published=3, delivered_bytes=7)]
        )
        self.assertEqual(total, ChannelStats(published=4, acked=2, delivered_bytes=7))

    def test_sum_connections(self) -> None:
        """
        Connection snapshots add up; C{blocked} is true if any is, and the
        extra amounts are added on top.
        """
        total = sum_connections(
            [
                ConnectionStats(published=1, blocked_seconds=1.5, blocked=True),
                ConnectionStats(published=2, blocked_seconds=1.0, recoveries=1),
            ],
            recoveries=2,
        )
        self.assertEqual(
            total, ConnectionStats(published=3, blocked_seconds=2.5, blocked=True, recoveries=3)
        )

    def test_sum_connections_unknown_counter(self) -> None:
        """
        An extra amount for a counter that does not exist is a L{TypeError}
        naming it.
        """
        with self.assertRaises(TypeError) as caught:
            sum_connections([], blocked=1)
        self.assertIn("'blocked'", str(caught.exception))


class ChannelCounterTests(SynchronousTestCase):
    """
    The counters of one channel, and of its connection.
    """

    def setUp(self) -> None:
        self.broker = open_broker()
        self.channel = self.broker.open_channel()

    def test_fresh(self) -> None:
        """
        A channel just opened has counted nothing; its connection counts
        the channel opened.
        """
        self.assertEqual(self.channel.stats(), ChannelStats())
        self.assertEqual(self.broker.client.stats(), ConnectionStats(channels_opened=1))

    def test_published(self) -> None:
        """
        Each publish counts once with its body size, whatever the body's
        type.
        """
        self.channel.basic_publish(routing_key="q", body=b"abc")
        self.channel.basic_publish(routing_key="q", body="héllo")
        self.channel.basic_publish(routing_key="q", body=bytearray(b"12345"))
        stats = self.channel.stats()
        self.assertEqual((stats.published, stats.published_bytes), (3, 3 + 6 + 5))

    def test_held_publish_counted_when_written(self) -> None:
        """
        A publish held while the broker blocks the connection counts once
        it is written, not before.
        """
        self.broker.reply("connection.blocked", 0, reason="low memory")
        d = self.channel.basic_publish(routing_key="q", body=b"abcd")
        self.assertNoResult(d)
        self.assertEqual(self.channel.stats().published, 0)
        self.broker.reply("connection.unblocked", 0)
        self.successResultOf(d)
        self.assertEqual(self.channel.stats(), ChannelStats(published=1, published_bytes=4))

    def test_refused_publish_not_counted(self) -> None:
        """
        A publish on a closed channel fails and counts nothing.
        """
        self.channel.close()
        self.broker.reply("channel.close-ok")
        self.failureResultOf(self.channel.basic_publish(routing_key="q", body=b"x"))
        self.assertEqual(self.channel.stats().published, 0)

    def test_confirms(self) -> None:
        """
        Broker acks count each publish they settle (a C{multiple} ack
        several); nacks count as C{publish_nacked}.
        """
        self.channel.confirm_select()
        self.broker.reply("confirm.select-ok")
        results = [self.channel.basic_publish(routing_key="q", body=b"m") for _ in range(4)]
        self.broker.reply("basic.ack", delivery_tag=2, multiple=True)
        self.broker.reply("basic.nack", delivery_tag=3, multiple=False)
        self.broker.reply("basic.ack", delivery_tag=4, multiple=False)
        for d in results[:2] + results[3:]:
            self.successResultOf(d)
        self.failureResultOf(results[2])
        stats = self.channel.stats()
        self.assertEqual((stats.published, stats.confirmed, stats.publish_nacked), (4, 3, 1))

    def test_returned(self) -> None:
        """
        Returned messages count with a return handler, without one, and in
        confirm mode (where RabbitMQ's ack that follows counts as
        confirmed).
        """
        returned = self.broker.frames.returned(1, b"r", "ex", "rk")
        self.broker.send(returned)
        self.channel.add_return_handler(lambda message: None)
        self.broker.send(returned)
        self.assertEqual(self.channel.stats().returned, 2)
        self.channel.confirm_select()
        self.broker.reply("confirm.select-ok")
        d = self.channel.basic_publish(exchange="ex", routing_key="rk", body=b"r", mandatory=True)
        self.broker.send(returned)
        self.broker.reply("basic.ack", delivery_tag=1)
        self.failureResultOf(d)
        stats = self.channel.stats()
        self.assertEqual((stats.returned, stats.confirmed), (3, 1))

    def test_delivered(self) -> None:
        """
        Consumer deliveries (known consumer or not) and C{basic.get-ok}s
        count with their body sizes; C{basic.get-empty} does not.
        """
        self.channel.basic_consume(queue="q", consumer_tag="c")
        self.broker.reply("basic.consume-ok", consumer_tag="c")
        self.broker.deliver("c", 1, b"12345")
        self.broker.deliver("unknown", 2, b"123")
        got = self.channel.basic_get(queue="q")
        self.broker.send(self.broker.frames.get_ok(1, b"1234567"))
        self.assertIsInstance(self.successResultOf(got), Message)
        empty = self.channel.basic_get(queue="q")
        self.broker.reply("basic.get-empty")
        self.assertIsNone(self.successResultOf(empty))
        stats = self.channel.stats()
        self.assertEqual((stats.delivered, stats.delivered_bytes), (3, 5 + 3 + 7))

    def test_settlements(self) -> None:
        """
        Acks, nacks and rejects the application sends count by kind, made
        through the channel or the message; a C{multiple} ack counts once.
        """
        messages: list[Message] = []
        self.channel.basic_consume(queue="q", consumer_tag="c", callback=messages.append)
        self.broker.reply("basic.consume-ok", consumer_tag="c")
        for tag in range(1, 6):
            self.broker.deliver("c", tag)
        messages[0].ack()
        self.channel.basic_ack(delivery_tag=3, multiple=True)
        messages[3].nack(requeue=False)
        messages[4].reject()
        self.channel.invoke("basic.reject", delivery_tag=2, requeue=True)
        sent = [name for _, name in self.broker.sent_names()]
        self.assertEqual(sent.count("basic.ack"), 2)
        stats = self.channel.stats()
        self.assertEqual((stats.acked, stats.nacked, stats.rejected), (2, 1, 2))

    def test_settlement_refused_not_counted(self) -> None:
        """
        An ack on a closed channel fails and counts nothing.
        """
        self.broker.reply("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED")
        self.failureResultOf(self.channel.basic_ack(delivery_tag=1))
        self.assertEqual(self.channel.stats().acked, 0)

    def test_snapshot_does_not_change(self) -> None:
        """
        A snapshot read earlier keeps its values as the channel goes on.
        """
        before = self.channel.stats()
        self.channel.basic_publish(routing_key="q", body=b"x")
        self.assertEqual(before.published, 0)
        self.assertEqual(self.channel.stats().published, 1)

    def test_connection_sums_open_and_closed_channels(self) -> None:
        """
        The connection's counters are those of its open channels plus
        those of the channels closed since, by the client or the broker.
        """
        other = self.broker.open_channel()
        third = self.broker.open_channel()
        self.channel.basic_publish(routing_key="q", body=b"ab")
        other.basic_publish(routing_key="q", body=b"cde")
        third.basic_publish(routing_key="q", body=b"f")
        other.close()
        self.broker.reply("channel.close-ok", 2)
        self.broker.reply("channel.close", 3, reply_code=404, reply_text="NOT_FOUND")
        self.assertIsNotNone(other.closed)
        self.assertIsNotNone(third.closed)
        stats = self.broker.client.stats()
        self.assertEqual((stats.published, stats.published_bytes), (3, 6))
        self.assertEqual(stats.channels_opened, 3)

    def test_connection_lost_keeps_channel_counts(self) -> None:
        """
        After the connection is lost, its counters still hold what its
        channels did.
        """
        self.channel.basic_publish(routing_key="q", body=b"ab")
        self.broker.lose(ConnectionLost)
        self.assertIsNotNone(self.channel.closed)
        stats = self.broker.client.stats()
        self.assertEqual((stats.published, stats.connections_lost), (1, 1))


class ConnectionCounterTests(SynchronousTestCase):
    """
    What only the connection counts: time blocked, heartbeat timeouts,
    losses.
    """

    def test_blocked_time(self) -> None:
        """
        The time publishing is blocked is counted by the connection's
        clock, the current block included, across blocks.
        """
        broker = open_broker()
        client = broker.client
        broker.reply("connection.blocked", 0, reason="low memory")
        broker.clock.advance(2.5)
        stats = client.stats()
        self.assertEqual((stats.blocked, stats.blocked_seconds), (True, 2.5))
        broker.clock.advance(1.5)
        broker.reply("connection.unblocked", 0)
        broker.clock.advance(10)
        self.assertEqual((client.stats().blocked, client.stats().blocked_seconds), (False, 4.0))
        broker.reply("connection.blocked", 0, reason="disk")
        broker.clock.advance(1)
        broker.lose(ConnectionLost)
        broker.clock.advance(10)
        self.assertEqual((client.stats().blocked, client.stats().blocked_seconds), (False, 5.0))

    def test_blocked_twice(self) -> None:
        """
        A second C{connection.blocked} without an unblock in between does
        not restart the count.
        """
        broker = open_broker()
        broker.reply("connection.blocked", 0, reason="memory")
        broker.clock.advance(1)
        broker.reply("connection.blocked", 0, reason="disk")
        broker.clock.advance(1)
        self.assertEqual(broker.client.stats().blocked_seconds, 2.0)

    def test_heartbeat_timeout(self) -> None:
        """
        A connection closed for a silent broker counts a heartbeat timeout
        and a loss.
        """
        broker = Broker()
        broker.handshake(heartbeat=10)
        broker.clock.pump([1] * 25)
        self.assertTrue(broker.transport.disconnecting)
        broker.lose(ConnectionLost)
        stats = broker.client.stats()
        self.assertEqual((stats.heartbeat_timeouts, stats.connections_lost), (1, 1))

    def test_closed_by_client_not_lost(self) -> None:
        """
        A connection the application closes is not counted as lost.
        """
        broker = open_broker()
        broker.client.close()
        broker.reply("connection.close-ok", 0)
        broker.lose()
        self.assertEqual(broker.client.stats().connections_lost, 0)

    def test_txamqp_immediate_close_not_lost(self) -> None:
        """
        txAMQP's immediate C{close()} (L{AMQClient}) is the application's
        close too: logged as C{connection.closing} by the client, then
        C{connection.closed}, and not counted as lost.
        """
        log = CapturedLog(self)
        broker = Broker(cls=AMQClient)
        broker.handshake()
        broker.client.close("bye")
        broker.lose()
        self.assertEqual(broker.client.stats().connections_lost, 0)
        [closing] = amqp_events(log, "connection.closing")
        self.assertEqual((closing["initiator"], closing["reply_text"]), ("client", "bye"))
        self.assertEqual(len(amqp_events(log, "connection.closed")), 1)
        self.assertEqual(amqp_events(log, "connection.lost"), [])

    def test_closed_by_broker_is_lost(self) -> None:
        """
        A connection the broker closes is counted as lost, even while the
        client was closing it too.
        """
        broker = open_broker()
        broker.client.close()
        broker.reply("connection.close", 0, reply_code=320, reply_text="CONNECTION_FORCED")
        broker.lose()
        self.assertEqual(broker.client.stats().connections_lost, 1)
        self.assertEqual(broker.client.stats().heartbeat_timeouts, 0)


class LogEventTests(SynchronousTestCase):
    """
    Each connection state change logs one event with a stable
    C{amqp_event} field and named fields, never a password.
    """

    def setUp(self) -> None:
        self.log = CapturedLog(self)

    def one(self, name: str) -> LogEvent:
        [event] = amqp_events(self.log, name)
        return event

    def assert_no_password(self) -> None:
        for event in self.log.events:
            self.assertNotIn(PASSWORD, repr(event))

    def test_connecting_and_opened(self) -> None:
        """
        C{connection.connecting} names the peer and virtual host;
        C{connection.opened} the server and the negotiated tuning.
        """
        broker = Broker(
            credentials=Credentials("user", PASSWORD), vhost="/prod", connection_name="orders"
        )
        connecting = self.one("connection.connecting")
        self.assertEqual(connecting["vhost"], "/prod")
        self.assertEqual(connecting["connection_name"], "orders")
        self.assertIn(":", connecting["peer"])
        broker.send(
            broker.frames.method(
                0,
                "connection.start",
                version_major=0,
                version_minor=9,
                server_properties={"product": "RabbitMQ", "version": b"3.13.0"},
                mechanisms=b"PLAIN",
                locales=b"en_US",
            )
        )
        broker.send(broker.frames.tune(channel_max=100, frame_max=65536, heartbeat=30))
        broker.send(broker.frames.open_ok())
        opened = self.one("connection.opened")
        self.assertEqual(
            {k: opened[k] for k in ("product", "version", "channel_max", "frame_max", "heartbeat")},
            {
                "product": "RabbitMQ",
                "version": "3.13.0",
                "channel_max": 100,
                "frame_max": 65536,
                "heartbeat": 30,
            },
        )
        self.assertIn("product", opened["server_properties"])
        self.assertEqual(opened["log_level"].name, "info")
        self.assertIn("RabbitMQ 3.13.0", self.log.texts()[-1])
        self.assert_no_password()

    def test_blocked_unblocked(self) -> None:
        """
        C{connection.blocked} carries the reason; C{connection.unblocked}
        how long the block lasted.
        """
        broker = open_broker()
        broker.reply("connection.blocked", 0, reason="low memory")
        broker.clock.advance(3)
        broker.reply("connection.unblocked", 0)
        self.assertEqual(self.one("connection.blocked")["reason"], "low memory")
        unblocked = self.one("connection.unblocked")
        self.assertEqual(unblocked["blocked_seconds"], 3.0)
        self.assertIn("after 3.000s", self.log.texts()[-1])

    def test_closed_by_client(self) -> None:
        """
        The application's close logs C{connection.closing} (by the client,
        with its reason) then C{connection.closed}, and no loss.
        """
        broker = open_broker(credentials=Credentials("user", PASSWORD))
        broker.client.close("shutting down")
        broker.reply("connection.close-ok", 0)
        broker.lose()
        closing = self.one("connection.closing")
        self.assertEqual(
            (closing["initiator"], closing["reply_code"], closing["reply_text"]),
            ("client", 200, "shutting down"),
        )
        closed = self.one("connection.closed")
        self.assertEqual(closed["log_level"].name, "info")
        self.assertEqual(amqp_events(self.log, "connection.lost"), [])
        self.assert_no_password()

    def test_closed_by_broker(self) -> None:
        """
        The broker's close logs C{connection.closing} by the broker with
        its reply code and text, then C{connection.lost} with the same.
        """
        broker = open_broker()
        broker.reply("connection.close", 0, reply_code=320, reply_text="CONNECTION_FORCED - bye")
        broker.lose()
        closing = self.one("connection.closing")
        self.assertEqual(
            (closing["initiator"], closing["reply_code"], closing["reply_text"]),
            ("broker", 320, "CONNECTION_FORCED - bye"),
        )
        lost = self.one("connection.lost")
        self.assertEqual((lost["reply_code"], lost["reply_text"]), (320, "CONNECTION_FORCED - bye"))
        self.assertIsInstance(lost["error"], errors.ConnectionForced)
        self.assertEqual(lost["log_level"].name, "warn")

    def test_heartbeat_initiator(self) -> None:
        """
        A heartbeat timeout logs C{connection.closing} by C{heartbeat}.
        """
        broker = Broker()
        broker.handshake(heartbeat=10)
        broker.clock.pump([1] * 25)
        self.assertEqual(self.one("connection.closing")["initiator"], "heartbeat")

    def test_network_loss(self) -> None:
        """
        A dropped transport logs C{connection.lost} with the reason.
        """
        broker = open_broker()
        broker.lose(ConnectionLost)
        lost = self.one("connection.lost")
        self.assertIn("connection lost", lost["reply_text"])
        self.assertTrue(lost["opened"])

    def test_never_preformatted(self) -> None:
        """
        Every event of a connection's life keeps its format string with
        named fields, filled in by the observer.
        """
        broker = open_broker()
        broker.reply("connection.blocked", 0, reason="x")
        broker.reply("connection.unblocked", 0)
        broker.client.close()
        broker.reply("connection.close-ok", 0)
        broker.lose()
        events = [e for e in self.log.events if "amqp_event" in e]
        self.assertEqual(
            [e["amqp_event"] for e in events],
            [
                "connection.connecting",
                "connection.opened",
                "connection.blocked",
                "connection.unblocked",
                "connection.closing",
                "connection.closed",
            ],
        )
        for event in events:
            self.assertIn("{", event["log_format"])


PARAMS = ConnectionParameters(credentials=Credentials("user", PASSWORD), heartbeat=0)


class RecoveringCounterTests(SynchronousTestCase):
    """
    A recovering connection keeps the totals of every connection it made,
    and counts its reconnections and recoveries.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock, users={"user": PASSWORD})
        self.log = CapturedLog(self)
        self.connection = RecoveringConnection(
            self.clock,
            [BrokerAddress(PARAMS, self.broker, "fake")],
            retry_policy=lambda attempt: 2.0 * attempt,
        )
        self.started = self.connection.start()
        self.broker.flush()
        self.successResultOf(self.started)

    def result(self, d: Any) -> Any:
        self.broker.flush()
        return self.successResultOf(d)

    def test_totals_across_connections(self) -> None:
        """
        Counts made on a connection since lost are kept; channels opened
        again count again; the loss, the reconnection and the recovery are
        counted.
        """
        channel = self.result(self.connection.open_channel())
        self.result(channel.confirm_select())
        for body in (b"a", b"bc"):
            self.result(channel.basic_publish(routing_key="q", body=body))
        self.broker.current.lose()
        self.broker.flush()
        self.clock.advance(2)
        self.broker.flush()
        self.result(channel.basic_publish(routing_key="q", body=b"def"))
        stats = self.connection.stats()
        self.assertEqual((stats.published, stats.published_bytes, stats.confirmed), (3, 6, 3))
        self.assertEqual(
            (
                stats.channels_opened,
                stats.connections_lost,
                stats.reconnect_attempts,
                stats.recoveries,
            ),
            (2, 1, 1, 1),
        )
        self.assertEqual(channel.stats().published, 3)

    def test_attempts_while_down(self) -> None:
        """
        Each reconnection the back-off schedules counts, whether or not it
        succeeds; closing the recovering connection is no loss.
        """
        self.broker.accepting = False
        self.broker.current.lose()
        self.broker.flush()
        self.clock.advance(2)
        self.clock.advance(4)
        self.assertEqual(self.connection.stats().reconnect_attempts, 3)
        self.broker.accepting = True
        self.clock.advance(6)
        self.broker.flush()
        self.result(self.connection.close())
        stats = self.connection.stats()
        self.assertEqual(
            (stats.reconnect_attempts, stats.recoveries, stats.connections_lost), (3, 1, 1)
        )

    def test_log_events(self) -> None:
        """
        The recovering connection logs C{recovery.connected} (in set-up),
        C{recovery.lost} with the reply code and text,
        C{recovery.reconnecting} with the attempt and delay,
        C{recovery.recovered} and C{recovery.closed}, with no password.
        """
        self.broker.current.lose()
        self.broker.flush()
        self.clock.advance(2)
        self.broker.flush()
        self.result(self.connection.close())
        names = [
            e["amqp_event"]
            for e in self.log.events
            if str(e.get("amqp_event", "")).startswith("recovery.")
        ]
        self.assertEqual(
            names,
            [
                "recovery.connected",
                "recovery.lost",
                "recovery.reconnecting",
                "recovery.recovered",
                "recovery.closed",
            ],
        )
        [lost] = amqp_events(self.log, "recovery.lost")
        self.assertIn("connection lost", lost["reply_text"])
        [reconnecting] = amqp_events(self.log, "recovery.reconnecting")
        self.assertEqual((reconnecting["attempt"], reconnecting["delay"]), (1, 2.0))
        for event in self.log.events:
            self.assertNotIn(PASSWORD, repr(event))
