# -*- test-case-name: tests.test_pool -*-
"""
Tests for L{txamqp_next.pool}: calls spread over pooled channels, on the
in-memory broker.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from txamqp_next.connection import AMQPConnection
from txamqp_next.errors import ConnectionClosed, LocalProtocolError, NoFreeChannel, NotFound
from txamqp_next.pool import ChannelPool, PoolClosed
from txamqp_next.testing import MemoryBroker


class PoolTests(SynchronousTestCase):
    """
    A pool of four channels on one connection.
    """

    def setUp(self) -> None:
        self.broker = MemoryBroker()
        self.connection: AMQPConnection = self.successResultOf(self.broker.open_connection())
        self.pool = ChannelPool(self.connection, size=4)

    def result(self, d: Deferred[Any]) -> Any:
        self.broker.flush()
        return self.successResultOf(d)

    def open_channels(self) -> int:
        """
        How many channels the broker has open on the connection.
        """
        return len(self.broker.current.channels)

    def test_calls_in_parallel(self) -> None:
        """
        Ten declarations at once open four channels, each carrying one call
        at a time; all ten are answered with their own queue names.
        """
        names = [f"q{i}" for i in range(10)]
        calls = [self.pool.queue_declare(queue=name) for name in names]
        self.assertEqual(self.pool.channels, 4)
        oks = [self.result(d) for d in calls]
        self.assertEqual([ok.queue for ok in oks], names)
        self.assertEqual(sorted(self.broker.queues), names)
        self.assertEqual(self.pool.channels, 4)
        self.assertEqual(self.open_channels(), 4)

    def test_channels_reused(self) -> None:
        """
        Calls made one after the other use one channel.
        """
        for i in range(5):
            self.result(self.pool.queue_declare(queue=f"q{i}"))
        self.assertEqual(self.pool.channels, 1)

    def test_error_fails_its_call_only(self) -> None:
        """
        A passive declaration of a missing queue fails with NotFound; the
        calls made with it succeed; the failed call's channel is closed and
        replaced when needed, so the pool keeps working.
        """
        calls = [self.pool.queue_declare(queue=f"q{i}") for i in range(3)]
        missing = self.pool.queue_declare(queue="missing", passive=True)
        calls += [self.pool.queue_declare(queue=f"r{i}") for i in range(3)]
        self.broker.flush()
        self.failureResultOf(missing, NotFound)
        self.assertEqual(len([self.successResultOf(d) for d in calls]), 6)
        more = [self.pool.queue_delete(queue=f"q{i}") for i in range(3)]
        self.assertEqual([self.result(d).message_count for d in more], [0, 0, 0])
        self.assertLessEqual(self.pool.channels, 4)
        self.assertEqual(self.open_channels(), self.pool.channels)

    def test_waiting_call_gets_new_channel(self) -> None:
        """
        A call waiting for a channel is given a new one when the channel it
        would have had closed over another call's error.
        """
        pool = ChannelPool(self.connection, size=1)
        missing = pool.queue_declare(queue="missing", passive=True)
        after = pool.queue_declare(queue="after")
        self.broker.flush()
        self.failureResultOf(missing, NotFound)
        self.assertEqual(self.successResultOf(after).queue, "after")
        self.assertEqual(pool.channels, 1)

    def test_typed_fields_checked_at_once(self) -> None:
        """
        A field the spec does not take raises TypeError at the call, before
        any channel is opened.
        """
        self.assertRaises(TypeError, self.pool.invoke, "queue.declare", durabel=True)
        self.assertEqual(self.pool.channels, 0)

    def test_close(self) -> None:
        """
        Closing the pool fails the calls waiting for a channel with
        PoolClosed, closes the idle channels, and later calls fail at once.
        """
        pool = ChannelPool(self.connection, size=1)
        self.result(pool.queue_declare(queue="a"))
        busy = pool.queue_declare(queue="b")
        waiting = pool.queue_declare(queue="c")
        closed = pool.close()
        self.failureResultOf(waiting, PoolClosed)
        self.broker.flush()
        self.assertEqual(self.successResultOf(busy).queue, "b")
        self.successResultOf(closed)
        self.failureResultOf(pool.queue_declare(queue="d"), PoolClosed)
        self.assertEqual(pool.channels, 0)
        self.assertEqual(self.open_channels(), 0)

    def test_cancel_waiting(self) -> None:
        """
        Cancelling a call waiting for a channel takes it out of the queue.
        """
        pool = ChannelPool(self.connection, size=1)
        busy = pool.queue_declare(queue="a")
        waiting = pool.queue_declare(queue="b")
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.result(busy).queue, "a")
        self.assertNotIn("b", self.broker.queues)

    def test_connection_lost(self) -> None:
        """
        When the connection is lost, calls in flight and waiting fail with
        its error, and so do later ones.
        """
        pool = ChannelPool(self.connection, size=1)
        busy = pool.queue_declare(queue="a")
        waiting = pool.queue_declare(queue="b")
        self.broker.close_connections()
        self.broker.flush()
        self.failureResultOf(busy, ConnectionClosed)
        self.failureResultOf(waiting, ConnectionClosed)
        self.failureResultOf(pool.queue_declare(queue="c"), ConnectionClosed)
        self.assertEqual(pool.channels, 0)

    def test_size_at_least_one(self) -> None:
        """
        A pool of no channels is refused.
        """
        self.assertRaises(ValueError, ChannelPool, self.connection, size=0)

    def test_size_an_int(self) -> None:
        """
        A size that is not an int (a float, a string, None, a bool) is
        refused with a TypeError naming it, rather than taken as a bound
        (1.5 would have opened two channels) or failing on a comparison.
        """
        for size in (1.5, "4", None, True):
            with self.assertRaises(TypeError) as caught:
                ChannelPool(self.connection, size=size)  # type: ignore[arg-type]
            self.assertIn(repr(size), str(caught.exception))

    def test_unknown_method_fails_its_deferred(self) -> None:
        """
        A method the spec lacks fails the call's Deferred with
        LocalProtocolError naming the spec, as Channel.invoke does, and
        opens no channel.
        """
        failure = self.failureResultOf(self.pool.invoke("queue.frobnicate"), LocalProtocolError)
        self.assertIn("queue.frobnicate", str(failure.value))
        self.assertEqual(self.pool.channels, 0)

    def test_connection_lost_many_waiting(self) -> None:
        """
        When the connection is lost with more calls waiting than the pool
        has channels, every call fails with ConnectionClosed: a closed
        channel hands none of them on, so each tries a channel of its own,
        which fails at once.
        """
        pool = ChannelPool(self.connection, size=2)
        calls = [pool.queue_declare(queue=f"q{i}") for i in range(10)]
        self.broker.close_connections()
        self.broker.flush()
        for d in calls:
            self.failureResultOf(d, ConnectionClosed)
        self.assertEqual(pool.channels, 0)
        self.assertIn("0 calls waiting", repr(pool))

    def test_no_reply_methods_refused(self) -> None:
        """
        Methods the broker does not answer (basic.nack, a no_wait
        declaration) are refused with LocalProtocolError and open no
        channel: the pool would hand their channel on at once, and a broker
        error over them would fail the next call on it instead.
        """
        for d in (
            self.pool.basic_nack(delivery_tag=7),
            self.pool.invoke("basic.ack", delivery_tag=1),
            self.pool.queue_declare(queue="q", no_wait=True),
        ):
            failure = self.failureResultOf(d, LocalProtocolError)
            self.assertIn("send it on a Channel", str(failure.value))
        self.assertEqual(self.pool.channels, 0)
        self.assertEqual(self.broker.queues, {})


class ChannelIdsTests(SynchronousTestCase):
    """
    A pool larger than the channel ids the connection has left makes do
    with the channels it could open.
    """

    def setUp(self) -> None:
        self.broker = MemoryBroker(channel_max=4)
        self.connection: AMQPConnection = self.successResultOf(self.broker.open_connection())

    def open_own(self) -> Any:
        """
        Open a channel of the application's, outside the pool.
        """
        d = self.connection.open_channel()
        self.broker.flush()
        return self.successResultOf(d)

    def test_calls_wait_for_pool_channels(self) -> None:
        """
        With one of four channel ids taken by a channel of the application,
        a pool of eight opens three; the twenty calls made at once all
        succeed on them, none failing for want of a channel id.
        """
        own = self.open_own()
        pool = ChannelPool(self.connection, size=8)
        names = [f"q{i}" for i in range(20)]
        calls = [pool.queue_declare(queue=name) for name in names]
        self.assertEqual(pool.channels, 3)
        self.broker.flush()
        self.assertEqual([self.successResultOf(d).queue for d in calls], names)
        self.assertEqual(pool.channels, 3)
        self.assertIn("0 calls waiting", repr(pool))
        self.assertTrue(own.is_open)

    def test_ids_freed(self) -> None:
        """
        Once one of the pool's channels closes (a broker error over its
        call), its id is free again and the pool opens a channel on it.
        """
        pool = ChannelPool(self.connection, size=8)
        first = [pool.queue_declare(queue=f"q{i}") for i in range(4)]
        missing = pool.queue_declare(queue="missing", passive=True)
        later = [pool.queue_declare(queue=f"r{i}") for i in range(6)]
        self.broker.flush()
        self.failureResultOf(missing, NotFound)
        for d in first + later:
            self.successResultOf(d)
        self.assertLessEqual(pool.channels, 4)
        calls = [pool.queue_declare(queue=f"s{i}") for i in range(8)]
        self.broker.flush()
        self.assertEqual(len([self.successResultOf(d) for d in calls]), 8)
        self.assertEqual(pool.channels, 4)

    def test_no_id_at_all(self) -> None:
        """
        When every channel id is taken and the pool has no channel, the
        calls fail with NoFreeChannel (a LocalProtocolError) rather than
        wait for a channel that may never come.
        """
        for _ in range(4):
            self.open_own()
        pool = ChannelPool(self.connection, size=2)
        calls = [pool.queue_declare(queue=f"q{i}") for i in range(3)]
        for d in calls:
            failure = self.failureResultOf(d, NoFreeChannel)
            self.assertIsInstance(failure.value, LocalProtocolError)
            self.assertIn("all 4 channels are in use", str(failure.value))
        self.assertEqual(pool.channels, 0)

    def test_close_while_waiting(self) -> None:
        """
        Calls waiting for one of the pool's channels after the ids ran out
        fail with PoolClosed when the pool closes.
        """
        for _ in range(3):
            self.open_own()
        pool = ChannelPool(self.connection, size=4)
        busy = pool.queue_declare(queue="a")
        waiting = pool.queue_declare(queue="b")
        self.assertEqual(pool.channels, 1)
        pool.close()
        self.failureResultOf(waiting, PoolClosed)
        self.broker.flush()
        self.assertEqual(self.successResultOf(busy).queue, "a")
