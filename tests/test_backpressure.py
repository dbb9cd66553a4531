# -*- test-case-name: tests.test_backpressure -*-
"""
Adapter tests for backpressure: the client is its transport's streaming
producer, holds publishes while the transport's buffer is full, and passes
the pause on to the application (L{AMQPConnection.register_producer},
L{AMQPConnection.when_writable}).  Over a L{StringTransport} that pauses its
producer past a high-water mark, with a L{Clock}.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.helpers import Broker, RecordingTransport
from txamqp_next import _frames, errors
from txamqp_next.channel import Channel

MiB = 1 << 20


class ThrottlingTransport(RecordingTransport):
    """
    A transport with a write buffer, as Twisted's TCP transport has: past
    C{high_water} buffered bytes it pauses its streaming producer, and
    L{drain} empties the buffer and resumes it.

    @ivar keep: keep what is written for L{Broker.frames_sent}; when false
        the buffer holds the data only until L{drain} (and counts it).
    """

    def __init__(self, high_water: int) -> None:
        super().__init__()
        self.high_water = high_water
        self.keep = True
        self.buffered = 0
        self.backlog: list[bytes] = []
        self.drained = 0
        self.paused = False

    def write(self, data: bytes) -> None:
        if self.keep:
            super().write(data)
        else:
            self.backlog.append(data)
        self.buffered += len(data)
        if self.buffered > self.high_water and not self.paused and self.producer is not None:
            self.paused = True
            self.producer.pauseProducing()

    def drain(self) -> None:
        """
        Everything buffered is written to the peer: empty the buffer and
        resume the producer.  As in a reactor, the turn in which the client
        wrote ends first, so the publishes that waited for its end (see
        C{AMQPConnection._flush}) reach the buffer before it is written.
        """
        clock = getattr(self.producer, "clock", None)
        if clock is not None:
            clock.advance(0)
        self.drained += self.buffered
        self.buffered = 0
        self.backlog = []
        if self.paused:
            self.paused = False
            assert self.producer is not None
            self.producer.resumeProducing()


@implementer(IPushProducer)
class Publisher:
    """
    An application producer that publishes fresh bodies as fast as it may.
    """

    def __init__(self, channel: Channel, count: int, size: int) -> None:
        self.channel = channel
        self.count = count
        self.size = size
        self.sent = 0
        self.paused = False
        self.stopped = False
        self.results: list[Deferred[None]] = []

    def run(self) -> None:
        while not self.paused and not self.stopped and self.sent < self.count:
            body = bytes([self.sent % 251]) * self.size
            self.results.append(self.channel.basic_publish(routing_key="q", body=body))
            self.sent += 1

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.run()

    def stopProducing(self) -> None:
        self.stopped = True


def bodies(broker: Broker) -> list[bytes]:
    return [item for kind, _, item in broker.frames_sent() if kind == _frames.FRAME_BODY]


class PausedTransportTests(SynchronousTestCase):
    """
    Publishes wait while the transport's buffer is over its high-water mark.
    """

    def setUp(self) -> None:
        self.connect()

    def connect(self, **kwargs: Any) -> None:
        """
        Connect a client (made with C{kwargs}) over a fresh throttling
        transport, open channel 1 and drain what the handshake wrote.
        """
        self.transport = ThrottlingTransport(high_water=1000)
        self.broker = Broker(transport=self.transport, **kwargs)
        self.broker.handshake()
        self.ch = self.broker.open_channel()
        self.client = self.broker.client
        self.transport.drain()

    def pause(self) -> None:
        """
        Fill the transport's buffer past its mark with one big publish (over
        _COALESCE_BYTES, so it is written at once).
        """
        self.successResultOf(self.ch.basic_publish(routing_key="q", body=b"x" * 20000))
        self.assertTrue(self.transport.paused)
        self.broker.frames_sent()

    def test_registered_as_streaming_producer(self) -> None:
        """
        The client registers itself with its transport as a streaming
        producer when the connection is made.
        """
        self.assertIs(self.transport.producer, self.client)
        self.assertTrue(self.transport.streaming)
        self.assertTrue(IPushProducer.providedBy(self.client))

    def test_held_until_drained(self) -> None:
        """
        While paused, publishes write nothing and their Deferreds stay
        pending; once the buffer drains they go out in order and fire.
        """
        self.pause()
        self.assertTrue(self.client.publishing_paused)
        ds = [self.ch.basic_publish(routing_key="q", body=b"%d" % i) for i in range(3)]
        self.assertEqual(bodies(self.broker), [])
        for d in ds:
            self.assertNoResult(d)
        self.transport.drain()
        self.assertEqual(bodies(self.broker), [b"0", b"1", b"2"])
        for d in ds:
            self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.client.publishing_paused)

    def test_refill_while_releasing(self) -> None:
        """
        When the held publishes fill the buffer again, the rest stay held
        (in order) until the next drain.
        """
        self.pause()
        # bodies over _COALESCE_BYTES: each publish is its own write
        size = 20000
        ds = [self.ch.basic_publish(routing_key="q", body=b"%d" % i * size) for i in range(4)]
        self.transport.drain()
        # the first passes the 1000-byte mark again
        self.assertEqual(bodies(self.broker), [b"0" * size])
        self.assertIsNone(self.successResultOf(ds[0]))
        self.assertNoResult(ds[1])
        self.assertTrue(self.client.publishing_paused)
        later = self.ch.basic_publish(routing_key="q", body=b"later")
        for _ in range(4):
            self.transport.drain()
        self.assertEqual(bodies(self.broker), [b"%d" % i * size for i in (1, 2, 3)] + [b"later"])
        self.successResultOf(later)

    def test_small_publishes_meet_backpressure_within_a_write(self) -> None:
        """
        Small held publishes released after a drain are written a few
        kilobytes at a time: the transport pauses the client after the write
        that passes its mark, so at most one write's worth passes it, and
        the rest stay held in order.
        """
        self.pause()
        ds = [self.ch.basic_publish(routing_key="q", body=b"%03d" % i * 100) for i in range(200)]
        self.transport.drain()
        self.assertTrue(self.client.publishing_paused)
        released = sum(1 for d in ds if d.called)
        # the first goes alone (the turn's first write), then one write of
        # the 55 that pass 16 KiB (55 x 300 bytes)
        self.assertEqual(released, 1 + 55)
        while not all(d.called for d in ds):
            self.transport.drain()
        self.assertEqual(bodies(self.broker), [b"%03d" % i * 100 for i in range(200)])

    def test_other_methods_not_held(self) -> None:
        """
        Acks and other methods still go out while publishes are held.
        """
        self.pause()
        self.ch.basic_ack(delivery_tag=7)
        self.assertEqual(self.broker.sent_names(), [(1, "basic.ack")])

    def test_confirms_count_released_publishes(self) -> None:
        """
        In confirm mode a held publish gets its sequence number when it is
        written, so the broker's acks settle the right Deferreds.
        """
        self.ch.confirm_select()
        self.broker.reply("confirm.select-ok")
        first = self.ch.basic_publish(routing_key="q", body=b"x" * 2000)
        self.assertTrue(self.transport.paused)
        second = self.ch.basic_publish(routing_key="q", body=b"second")
        self.transport.drain()
        self.broker.reply("basic.ack", delivery_tag=2, multiple=False)
        self.assertIsNone(self.successResultOf(second))
        self.assertNoResult(first)
        self.broker.reply("basic.ack", delivery_tag=1, multiple=False)
        self.successResultOf(first)

    def test_new_channel_holds(self) -> None:
        """
        A channel opened while paused holds its publishes too.
        """
        self.pause()
        other = self.broker.open_channel()
        d = other.basic_publish(routing_key="q", body=b"on 2")
        self.assertNoResult(d)
        self.transport.drain()
        self.successResultOf(d)

    def test_held_fail_on_connection_lost(self) -> None:
        """
        Publishes held when the connection is lost fail with its error.
        """
        self.pause()
        d = self.ch.basic_publish(routing_key="q", body=b"lost")
        self.client.connectionLost(Failure(ConnectionLost("gone")))
        self.failureResultOf(d, errors.ConnectionClosed)

    def test_held_bytes_capped(self) -> None:
        """
        A publish that would take the held bodies past C{max_held_bytes}
        fails at once with PublishBufferFull and sends nothing; the ones
        held before it go out on drain, and then publishes are held again.
        """
        self.connect(max_held_bytes=10)
        self.assertEqual(self.client.max_held_bytes, 10)
        self.pause()
        first = self.ch.basic_publish(routing_key="q", body=b"12345")
        refused = self.ch.basic_publish(routing_key="q", body=b"123456")
        failure = self.failureResultOf(refused, errors.PublishBufferFull)
        self.assertIn("max_held_bytes=10", str(failure.value))
        self.assertNoResult(first)
        self.transport.drain()
        self.successResultOf(first)
        self.assertEqual(bodies(self.broker), [b"12345"])
        self.pause()
        self.assertNoResult(self.ch.basic_publish(routing_key="q", body=b"0123456789"))

    def test_large_message_held_alone(self) -> None:
        """
        One message larger than C{max_held_bytes} is still held when nothing
        else is, so a large body is never refused for its size alone.
        """
        self.connect(max_held_bytes=10)
        self.assertEqual(self.client.max_held_bytes, 10)
        self.pause()
        d = self.ch.basic_publish(routing_key="q", body=b"x" * 100)
        self.assertNoResult(d)
        self.transport.drain()
        self.successResultOf(d)

    def test_held_bytes_forgotten_when_lost(self) -> None:
        """
        Publishes that fail because the channel closed no longer count as
        held.
        """
        self.pause()
        d = self.ch.basic_publish(routing_key="q", body=b"lost")
        self.assertEqual(self.client._held_bytes, 4)
        self.client.connectionLost(Failure(ConnectionLost("gone")))
        self.failureResultOf(d, errors.ConnectionClosed)
        self.assertEqual(self.client._held_bytes, 0)

    def test_when_writable(self) -> None:
        """
        C{when_writable} fires at once when not paused, else after the
        drain has sent the held publishes; it fails when the connection is
        lost.
        """
        self.successResultOf(self.client.when_writable())
        self.pause()
        held = self.ch.basic_publish(routing_key="q", body=b"held")
        writable = self.client.when_writable()
        writable.addCallback(lambda _: self.assertIsNone(self.successResultOf(held)))
        self.assertNoResult(writable)
        self.transport.drain()
        self.successResultOf(writable)
        self.pause()
        lost = self.client.when_writable()
        self.client.connectionLost(Failure(ConnectionLost("gone")))
        self.failureResultOf(lost, errors.ConnectionClosed)
        self.failureResultOf(self.client.when_writable(), errors.ConnectionClosed)

    def test_blocked_pauses_too(self) -> None:
        """
        C{connection.blocked} pauses publishing like a full buffer does;
        publishing resumes only when neither holds it.
        """
        self.broker.reply("connection.blocked", channel=0, reason="memory")
        self.assertTrue(self.client.publishing_paused)
        d = self.ch.basic_publish(routing_key="q", body=b"b")
        self.pause_while_blocked()
        self.broker.reply("connection.unblocked", channel=0)
        self.assertNoResult(d)
        self.assertTrue(self.client.publishing_paused)
        self.transport.drain()
        self.successResultOf(d)
        self.assertEqual(bodies(self.broker), [b"b"])

    def pause_while_blocked(self) -> None:
        self.client.pauseProducing()
        self.transport.paused = True

    def test_heartbeats_while_paused(self) -> None:
        """
        Heartbeats are written on schedule while publishes are held.
        """
        broker = Broker(transport=ThrottlingTransport(high_water=1000))
        broker.handshake(heartbeat=2)
        ch = broker.open_channel()
        broker.frames_sent()
        ch.basic_publish(routing_key="q", body=b"x" * 2000)
        broker.frames_sent()
        held = ch.basic_publish(routing_key="q", body=b"held")
        # the publish counts as traffic at 1 s; heartbeats follow at 3 and 5 s
        for _ in range(6):
            broker.send(_frames.HEARTBEAT)  # the broker is alive
            broker.clock.advance(1)
        kinds = [kind for kind, _, _ in broker.frames_sent()]
        self.assertEqual(kinds.count(_frames.FRAME_HEARTBEAT), 2)
        self.assertNotIn(_frames.FRAME_BODY, kinds)
        self.assertNoResult(held)


class ProducerTests(SynchronousTestCase):
    """
    An application producer registered with the client is paused and
    resumed with publishing.
    """

    def setUp(self) -> None:
        self.connect()

    def connect(self, **kwargs: Any) -> None:
        """
        Connect a client (made with C{kwargs}) over a fresh throttling
        transport, open channel 1 and drain what the handshake wrote.
        """
        self.transport = ThrottlingTransport(high_water=1000)
        self.broker = Broker(transport=self.transport, **kwargs)
        self.broker.handshake()
        self.ch = self.broker.open_channel()
        self.client = self.broker.client
        self.transport.drain()

    def test_paused_and_resumed(self) -> None:
        """
        The producer runs until the buffer is full, is paused, and resumes
        after the drain; every message arrives once, in order.
        """
        producer = Publisher(self.ch, count=10, size=20000)
        self.client.register_producer(producer)
        producer.run()
        self.assertTrue(producer.paused)
        # a body over _COALESCE_BYTES is written at once: the first passes
        # the 1000-byte mark
        self.assertEqual(producer.sent, 1)
        while producer.sent < 10 or self.transport.paused:
            self.transport.drain()
        self.assertEqual(bodies(self.broker), [bytes([i]) * 20000 for i in range(10)])

    def test_small_publishes_pause_within_a_write(self) -> None:
        """
        A producer of small messages is paused by the write that passes the
        mark, at most 64 sends or 16 KiB after the turn's first publish.
        """
        producer = Publisher(self.ch, count=1000, size=100)
        self.client.register_producer(producer)
        producer.run()
        self.assertTrue(producer.paused)
        self.assertEqual(producer.sent, 1 + 64)
        while producer.sent < 1000 or self.transport.paused:
            self.transport.drain()
        self.assertEqual(bodies(self.broker), [bytes([i % 251]) * 100 for i in range(1000)])
        for d in producer.results:
            self.successResultOf(d)

    def test_registered_while_paused(self) -> None:
        """
        A producer registered while publishing is paused is paused at once.
        """
        self.ch.basic_publish(routing_key="q", body=b"x" * 2000)
        producer = Publisher(self.ch, count=1, size=1)
        self.client.register_producer(producer)
        self.assertTrue(producer.paused)
        self.transport.drain()
        self.assertFalse(producer.paused)
        self.assertEqual(producer.sent, 1)

    def test_unregistered(self) -> None:
        """
        An unregistered producer hears nothing more.
        """
        producer = Publisher(self.ch, count=0, size=1)
        self.client.register_producer(producer)
        self.client.unregister_producer(producer)
        self.ch.basic_publish(routing_key="q", body=b"x" * 2000)
        self.assertFalse(producer.paused)

    def test_stopped_on_connection_lost(self) -> None:
        """
        When the connection ends the producer is stopped and forgotten.
        """
        producer = Publisher(self.ch, count=0, size=1)
        self.client.register_producer(producer)
        self.client.connectionLost(Failure(ConnectionLost("gone")))
        self.assertTrue(producer.stopped)

    def test_failing_producer_logged(self) -> None:
        """
        A producer whose C{pauseProducing} raises is logged; publishing
        goes on.
        """

        @implementer(IPushProducer)
        class Broken:
            def pauseProducing(self) -> None:
                raise ValueError("broken producer")

            def resumeProducing(self) -> None:
                pass

            def stopProducing(self) -> None:
                pass

        self.client.register_producer(Broken())
        self.ch.basic_publish(routing_key="q", body=b"x" * 2000)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.transport.drain()
        self.assertFalse(self.client.publishing_paused)


class BoundedMemoryTests(SynchronousTestCase):
    """
    A gigabyte published through a transport that pauses at a few MiB
    never needs more than a few MiB: backpressure bounds memory.  Memory is
    measured with C{tracemalloc} (every Python allocation, bodies included),
    which is exact and independent of the allocator and other processes.
    """

    TOTAL = 1024 * MiB
    SIZE = MiB
    HIGH_WATER = 4 * MiB
    BOUND = 16 * MiB

    def setUp(self) -> None:
        self.transport = ThrottlingTransport(high_water=self.HIGH_WATER)
        self.broker = Broker(transport=self.transport)
        self.broker.handshake()
        self.ch = self.broker.open_channel()
        self.transport.keep = False

    def measure(self, run: Any, done: Any) -> int:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            run()
            for _ in range(2 * self.TOTAL // self.SIZE):
                if done():
                    break
                self.transport.drain()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def test_awaiting_publisher(self) -> None:
        """
        An application awaiting each publish sends 1 GiB with a peak of
        under 16 MiB.
        """
        count = self.TOTAL // self.SIZE

        async def publish_all() -> None:
            for i in range(count):
                await self.ch.basic_publish(routing_key="q", body=bytes([i % 251]) * self.SIZE)

        finished: list[Deferred[None]] = []
        peak = self.measure(
            lambda: finished.append(ensureDeferred(publish_all())),
            lambda: finished[0].called,
        )
        self.successResultOf(finished[0])
        self.transport.drain()
        self.assertGreater(self.transport.drained, self.TOTAL)
        self.assertLess(peak, self.BOUND)

    def test_push_producer(self) -> None:
        """
        A registered push producer sends 1 GiB with a peak of under 16 MiB.
        """
        producer = Publisher(self.ch, count=self.TOTAL // self.SIZE, size=self.SIZE)
        self.broker.client.register_producer(producer)
        peak = self.measure(producer.run, lambda: producer.sent == producer.count)
        self.transport.drain()
        self.assertGreater(self.transport.drained, self.TOTAL)
        self.assertLess(peak, self.BOUND)

    def test_measure_sees_growth(self) -> None:
        """
        The measure can fail: a producer that ignores backpressure (not
        registered) buffers everything, and 32 MiB shows as a peak over
        32 MiB.
        """
        producer = Publisher(self.ch, count=32, size=self.SIZE)
        peak = self.measure(producer.run, lambda: True)
        self.assertEqual(producer.sent, 32)
        self.assertGreater(peak, 32 * MiB)


class DispatchTests(SynchronousTestCase):
    """
    Publishes made while received frames are handled (from a consumer
    callback) are batched into one write, but not without bound.
    """

    def test_callback_publishes_paused(self) -> None:
        """
        A callback publishing 10 bodies of 4 KiB writes once 16 KiB are
        waiting; the transport then pauses the client and the rest are held
        until it drains, in order.
        """
        transport = ThrottlingTransport(high_water=1000)
        broker = Broker(transport=transport)
        broker.handshake()
        ch = broker.open_channel()
        transport.drain()
        results: list[Deferred[None]] = []

        def callback(message: object) -> None:
            for i in range(10):
                results.append(ch.basic_publish(routing_key="q", body=bytes([i]) * 4096))

        ch.basic_consume(queue="in", consumer_tag="tag", callback=callback)
        broker.reply("basic.consume-ok", consumer_tag="tag")
        broker.frames_sent()
        broker.deliver("tag", 1)
        self.assertTrue(broker.client.publishing_paused)
        self.assertEqual([d.called for d in results], [True] * 4 + [False] * 6)
        while transport.paused:
            transport.drain()
        self.assertEqual(bodies(broker), [bytes([i]) * 4096 for i in range(10)])


class WritableOrderTests(SynchronousTestCase):
    """
    C{when_writable} waiters wake one at a time while publishing stays
    unpaused.
    """

    def test_waiter_refills_buffer(self) -> None:
        """
        When the first waiter's publish fills the buffer again, the second
        waiter keeps waiting until the next drain.
        """
        transport = ThrottlingTransport(high_water=1000)
        broker = Broker(transport=transport)
        broker.handshake()
        ch = broker.open_channel()
        transport.drain()
        ch.basic_publish(routing_key="q", body=b"x" * 2000)
        first = broker.client.when_writable()
        first.addCallback(lambda _: ch.basic_publish(routing_key="q", body=b"y" * 2000))
        second = broker.client.when_writable()
        transport.drain()
        self.successResultOf(first)
        self.assertNoResult(second)
        self.assertTrue(broker.client.publishing_paused)
        transport.drain()
        self.successResultOf(second)
