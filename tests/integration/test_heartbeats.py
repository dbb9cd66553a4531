"""
Heartbeats against the real broker, through a loopback proxy that can
freeze, delay or cut the traffic (L{tests.integration.proxy}).  The
heartbeat is 1 s to keep the tests short.
"""

from __future__ import annotations

import time

from twisted.internet import defer
from twisted.python import log

from tests.integration.broker import BrokerTestCase, async_test, reactor, sleep, unique
from tests.integration.proxy import Proxy, frame_types
from txamqp_next import errors
from txamqp_next.connection import AMQPConnection

HEARTBEAT_FRAME = 8


class HeartbeatTests(BrokerTestCase):
    """
    The negotiated heartbeat keeps a connection alive, and a silent peer is
    given up on after two intervals.
    """

    async def proxied(self, **kwargs: object) -> tuple[Proxy, AMQPConnection]:
        proxy = Proxy(reactor())
        await proxy.start()
        self.addCleanup(proxy.stop)
        client = await self.connect(proxy.url, heartbeat=1, **kwargs)
        self.assertEqual(client.core.heartbeat, 1)
        return proxy, client

    @async_test
    async def test_alive_while_busy_and_idle(self) -> None:
        """
        A client busy publishing for four intervals, with its reactor
        blocked by application work a fifth of an interval at a time, keeps
        its connection; then, idle for three intervals, both sides send
        heartbeats and the connection still answers.
        """
        proxy, client = await self.proxied()
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue=unique("busy"), exclusive=True)).queue
        published = 0
        end = time.monotonic() + 4
        while time.monotonic() < end:
            for _ in range(200):
                ch.basic_publish(routing_key=queue, body=b"m" * 100)
                published += 1
            time.sleep(0.2)  # the application is busy; the reactor waits
            await client.when_writable()
            await sleep(0)
        self.assertIsNone(client.closed)
        idle_from = (len(proxy.to_broker), len(proxy.to_client))
        await sleep(3.2)
        self.assertIsNone(client.closed)
        sent = frame_types(proxy.to_broker, since=idle_from[0])
        received = frame_types(proxy.to_client, since=idle_from[1])
        self.assertGreaterEqual(sent.count(HEARTBEAT_FRAME), 2, sent)
        self.assertGreaterEqual(received.count(HEARTBEAT_FRAME), 2, received)
        ok = await ch.queue_declare(queue=queue, passive=True)
        self.assertEqual(ok.message_count, published)

    @async_test
    async def test_frozen_broker_times_out(self) -> None:
        """
        When nothing comes from the broker for two intervals the client
        drops the connection with HeartbeatTimeout, and every pending
        Deferred (a call, a confirm, a consumer) fails with it.
        """
        proxy, client = await self.proxied()
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue=unique("frozen"), exclusive=True)).queue
        consumer = await ch.basic_consume(queue=queue)
        await ch.confirm_select()
        proxy.freeze()
        frozen_at = time.monotonic()
        declare = ch.queue_declare(queue=queue, passive=True)
        confirm = ch.basic_publish(routing_key=queue, body=b"never confirmed")
        ended = consumer.when_ended()
        await client.when_closed()
        waited = time.monotonic() - frozen_at
        log.msg(f"heartbeat timeout noticed {waited:.2f}s after the freeze")
        self.assertIsInstance(client.closed, errors.HeartbeatTimeout)
        await self.assertFailure(declare, errors.HeartbeatTimeout)
        await self.assertFailure(confirm, errors.HeartbeatTimeout)
        self.assertIsInstance(await ended, errors.HeartbeatTimeout)
        await self.assertFailure(ch.basic_get(queue=queue), errors.HeartbeatTimeout)
        # two intervals, sampled every half interval, plus scheduling noise
        self.assertGreaterEqual(waited, 1.5)
        self.assertLess(waited, 5)

    @async_test
    async def test_thawed_in_time(self) -> None:
        """
        Traffic frozen for less than two intervals, then let through,
        costs nothing: the calls made meanwhile complete.
        """
        proxy, client = await self.proxied()
        ch = await client.open_channel()
        proxy.freeze()
        declare = ch.queue_declare(queue=unique("thawed"), exclusive=True)
        await sleep(1.2)
        proxy.thaw()
        ok = await declare
        self.assertTrue(ok.queue)
        self.assertIsNone(client.closed)

    @async_test
    async def test_delayed_traffic(self) -> None:
        """
        Every chunk held back 0.3 s each way: the connection lives across
        three intervals and calls complete, in order.
        """
        proxy, client = await self.proxied()
        ch = await client.open_channel()
        proxy.delay = 0.3
        started = time.monotonic()
        queue = (await ch.queue_declare(queue=unique("delayed"), exclusive=True)).queue
        self.assertGreaterEqual(time.monotonic() - started, 0.6)
        await ch.confirm_select()
        confirms = [ch.basic_publish(routing_key=queue, body=b"%d" % i) for i in range(20)]
        await defer.gatherResults(confirms)
        await sleep(3)
        self.assertIsNone(client.closed)
        for i in range(20):
            message = await ch.basic_get(queue=queue, no_ack=True)
            assert message is not None
            self.assertEqual(message.body, b"%d" % i)

    @async_test
    async def test_cut(self) -> None:
        """
        A connection cut in the middle fails everything at once with
        ConnectionClosed, without waiting for the heartbeat.
        """
        proxy, client = await self.proxied()
        ch = await client.open_channel()
        proxy.freeze()
        declare = ch.queue_declare(queue=unique("cut"), exclusive=True)
        started = time.monotonic()
        proxy.cut()
        await self.assertFailure(declare, errors.ConnectionClosed)
        self.assertNotIsInstance(client.closed, errors.HeartbeatTimeout)
        self.assertLess(time.monotonic() - started, 1)
