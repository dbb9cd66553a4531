# -*- test-case-name: tests.integration.test_pool -*-
"""
L{txamqp_next.pool.ChannelPool} against the real broker: many declarations
in flight at once, an error confined to its call, a recovering connection.
"""

from __future__ import annotations

import asyncio
import time

from twisted.internet import defer

import txamqp_next
from tests.integration.broker import BROKER, BrokerTestCase, async_test, reactor, unique
from tests.integration.proxy import Proxy
from tests.integration.test_asyncio import in_task
from tests.integration.test_recovery import FAST_RETRY, EventLog, wait_until
from tests.integration.test_specs import SPEC_FILES
from txamqp_next.errors import ConnectionClosed, NotFound
from txamqp_next.pool import ChannelPool, PoolClosed
from txamqp_next.recovery import connect_recovering


class PoolTests(BrokerTestCase):
    """
    Calls spread over pooled channels.
    """

    async def declare(self, pool: ChannelPool, prefix: str, count: int) -> list[str]:
        """
        Declare C{count} exclusive queues at once through C{pool}, and check
        that each was declared under its name.

        @return: their names.
        """
        names = [unique(f"{prefix}-{i}") for i in range(count)]
        oks = await defer.gatherResults(
            [pool.queue_declare(queue=name, exclusive=True) for name in names],
            consumeErrors=True,
        )
        self.assertEqual([ok.queue for ok in oks], names)
        return names

    @async_test
    async def test_many_declarations(self) -> None:
        """
        500 exclusive queues declared at once through a pool of 32 channels
        are all declared, with their names, on at most 32 channels; then
        all deleted the same way.
        """
        client = await self.connect()
        pool = ChannelPool(client, size=32)
        names = await self.declare(pool, "pool", 500)
        self.assertLessEqual(pool.channels, 32)
        deleted = await defer.gatherResults(
            [pool.queue_delete(queue=name) for name in names], consumeErrors=True
        )
        self.assertEqual([ok.message_count for ok in deleted], [0] * 500)
        await pool.close()

    @async_test
    async def test_more_than_channel_max(self) -> None:
        """
        On a connection limited to 4 channels, one of them the
        application's, a pool of 8 makes do with the 3 ids left: 30
        declarations at once all succeed on 3 channels, and the
        application's channel goes on working.
        """
        client = await self.connect(channel_max=4)
        self.assertEqual(client.core.channel_max, 4)
        own = await client.open_channel()
        pool = ChannelPool(client, size=8)
        names = await self.declare(pool, "pool-max", 30)
        self.assertEqual(pool.channels, 3)
        ok = await own.queue_declare(queue=names[0], passive=True)
        self.assertEqual(ok.queue, names[0])
        await pool.close()

    @async_test
    async def test_error_confined_to_its_call(self) -> None:
        """
        Among 100 declarations in flight, a passive declaration of a missing
        queue fails with NotFound and the 100 others succeed; the pool goes
        on working after it.
        """
        client = await self.connect()
        pool = ChannelPool(client, size=8)
        names = [unique(f"pool-{i}") for i in range(100)]
        calls = [pool.queue_declare(queue=name, exclusive=True) for name in names[:50]]
        missing = pool.queue_declare(queue=unique("missing"), passive=True)
        calls += [pool.queue_declare(queue=name, exclusive=True) for name in names[50:]]
        await self.assertFailure(missing, NotFound)
        oks = await defer.gatherResults(calls, consumeErrors=True)
        self.assertEqual([ok.queue for ok in oks], names)
        ok = await pool.queue_declare(queue=names[0], passive=True)
        self.assertEqual(ok.queue, names[0])
        await pool.close()

    @async_test
    async def test_unanswered_method_refused(self) -> None:
        """
        A nack of an unknown delivery tag (which the broker answers by
        closing the channel with 406) is refused by the pool, so the call
        made next on a pool of one channel succeeds instead of failing with
        the nack's PreconditionFailed.
        """
        from txamqp_next.errors import LocalProtocolError

        client = await self.connect()
        pool = ChannelPool(client, size=1)
        await pool.queue_declare(queue="", exclusive=True)
        await self.assertFailure(pool.basic_nack(delivery_tag=7), LocalProtocolError)
        ok = await pool.queue_declare(queue="", exclusive=True)
        self.assertTrue(ok.queue)
        await pool.close()

    @async_test
    async def test_recovering_connection(self) -> None:
        """
        A pool works on a recovering connection too.
        """
        connection = await connect_recovering(reactor(), BROKER)
        self.addCleanup(connection.close)
        pool = ChannelPool(connection, size=4)
        names = [unique(f"pool-{i}") for i in range(20)]
        oks = await defer.gatherResults(
            [pool.queue_declare(queue=name, auto_delete=True) for name in names],
            consumeErrors=True,
        )
        self.assertEqual([ok.queue for ok in oks], names)
        await defer.gatherResults([pool.queue_delete(queue=name) for name in names])
        await pool.close()


class PoolFaultTests(BrokerTestCase):
    """
    A pool whose connection goes away, or which is closed, under load.
    """

    async def outcomes(self, calls: list[defer.Deferred[object]]) -> tuple[set[type], float]:
        """
        Wait for every call, at most 10 s each; the kinds of their results
        (a timeout would be a hang) and how long it took.
        """
        started = time.monotonic()
        results = await defer.DeferredList(
            [d.addTimeout(10, reactor()) for d in calls], consumeErrors=True
        )
        kinds = {type(value.value) if not ok else type(None) for ok, value in results}
        return kinds, time.monotonic() - started

    async def proxied(self) -> tuple[Proxy, txamqp_next.AMQPConnection]:
        proxy = Proxy(reactor())
        await proxy.start()
        self.addCleanup(proxy.stop)
        return proxy, await self.connect(proxy.url)

    @async_test
    async def test_connection_cut_under_load(self) -> None:
        """
        200 declarations in flight on 8 channels when the proxy cuts the
        connection: every one, in flight or waiting for a channel, fails
        with ConnectionClosed within a second (none hangs), and so do calls
        made afterwards, at once.
        """
        proxy, client = await self.proxied()
        pool = ChannelPool(client, size=8)
        await pool.queue_declare(queue="", exclusive=True)
        calls = [pool.queue_declare(queue="", exclusive=True) for _ in range(200)]
        proxy.cut()
        kinds, took = await self.outcomes(calls)
        self.assertEqual(kinds, {ConnectionClosed})
        self.assertLess(took, 1.0)
        kinds, took = await self.outcomes([pool.queue_declare(queue="x") for _ in range(3)])
        self.assertEqual(kinds, {ConnectionClosed})
        self.assertEqual(pool.channels, 0)
        await pool.close()

    @async_test
    async def test_recovering_with_few_channel_ids(self) -> None:
        """
        A recovering connection limited to 4 channels, one of them the
        application's, and a pool of 8: the 20 declarations made at once
        succeed on the 3 channels the pool could open (the fourth open
        failed with NoFreeChannel and was forgotten).  After the proxy cuts
        the connection it recovers (nothing left over to reopen), and 20
        more declarations and the application's channel work.
        """
        proxy = Proxy(reactor())
        await proxy.start()
        self.addCleanup(proxy.stop)
        events = EventLog()
        connection = await connect_recovering(
            reactor(), proxy.url, on_event=events, retry_policy=FAST_RETRY, channel_max=4
        )
        self.addCleanup(connection.close)
        own = await connection.open_channel()
        pool = ChannelPool(connection, size=8)
        names = [unique(f"pool-recovering-{i}") for i in range(40)]
        oks = await defer.gatherResults(
            [pool.queue_declare(queue=name, auto_delete=True) for name in names[:20]],
            consumeErrors=True,
        )
        self.assertEqual([ok.queue for ok in oks], names[:20])
        self.assertEqual(pool.channels, 3)
        proxy.cut()
        await wait_until(lambda: "recovered" in events.kinds(), 20, "recovery")
        oks = await defer.gatherResults(
            [pool.queue_declare(queue=name, auto_delete=True) for name in names[20:]],
            consumeErrors=True,
        )
        self.assertEqual([ok.queue for ok in oks], names[20:])
        self.assertEqual(pool.channels, 3)
        ok = await own.queue_declare(queue=names[0], passive=True)
        self.assertEqual(ok.queue, names[0])
        await defer.gatherResults([pool.queue_delete(queue=name) for name in names])
        await pool.close()

    @async_test
    async def test_connection_cut_while_opening(self) -> None:
        """
        Cut before the pool's first channels are open: the 50 calls, all
        waiting for a channel, fail with ConnectionClosed, none hangs.
        """
        proxy, client = await self.proxied()
        pool = ChannelPool(client, size=8)
        calls = [pool.queue_declare(queue="", exclusive=True) for _ in range(50)]
        proxy.cut()
        kinds, took = await self.outcomes(calls)
        self.assertEqual(kinds, {ConnectionClosed})
        self.assertLess(took, 1.0)

    @async_test
    async def test_client_closes_under_load(self) -> None:
        """
        The application closes the connection with 50 calls in flight or
        waiting: each either succeeds or fails with ConnectionClosed, none
        hangs; later calls fail at once.
        """
        _, client = await self.proxied()
        pool = ChannelPool(client, size=8)
        await pool.queue_declare(queue="", exclusive=True)
        calls = [pool.queue_declare(queue="", exclusive=True) for _ in range(50)]
        closing = client.close()
        kinds, _ = await self.outcomes(calls)
        self.assertLessEqual(kinds, {type(None), ConnectionClosed})
        await closing
        kinds, _ = await self.outcomes([pool.queue_declare(queue="x")])
        self.assertEqual(kinds, {ConnectionClosed})

    @async_test
    async def test_close_under_load(self) -> None:
        """
        Closing a pool of 2 channels with 10 calls made: the 2 in flight
        are answered, the 8 waiting fail with PoolClosed, and the broker is
        left with no channel of the pool once they are.
        """
        client = await self.connect()
        pool = ChannelPool(client, size=2)
        calls = [pool.queue_declare(queue="", exclusive=True) for _ in range(10)]
        closed = pool.close()
        results = await defer.DeferredList(calls, consumeErrors=True)
        await closed
        self.assertEqual([ok for ok, _ in results], [True] * 2 + [False] * 8)
        for _, failure in results[2:]:
            self.assertIsInstance(failure.value, PoolClosed)
        self.assertEqual(pool.channels, 0)
        await self.assertFailure(pool.queue_declare(queue="x"), PoolClosed)


class PoolAsyncioTests(BrokerTestCase):
    """
    The pool awaited from asyncio tasks under the asyncio reactor.
    """

    @in_task
    async def test_gather_in_task(self) -> None:
        """
        50 declarations through a pool, gathered with asyncio.gather in an
        asyncio task, are answered; a missing queue fails its call alone
        with NotFound.
        """
        client = await self.connect()
        pool = ChannelPool(client, size=8)
        names = [unique(f"pool-aio-{i}") for i in range(50)]
        oks = await asyncio.gather(
            *(pool.queue_declare(queue=name, exclusive=True) for name in names)
        )
        self.assertEqual([ok.queue for ok in oks], names)
        results = await asyncio.gather(
            pool.queue_declare(queue=unique("missing"), passive=True),
            pool.queue_declare(queue=names[0], passive=True),
            return_exceptions=True,
        )
        self.assertIsInstance(results[0], NotFound)
        self.assertEqual(results[1].queue, names[0])  # type: ignore[union-attr]
        await pool.close()


class PoolSpecTests(BrokerTestCase):
    """
    The pool on connections that loaded Debian's spec files.
    """

    @async_test
    async def test_other_specs(self) -> None:
        """
        With each of the 0-8, 0-9 and 0-9-1 files loaded, declarations
        through the pool are answered, a missing queue fails with NotFound,
        and a method the spec lacks (confirm.select) fails with
        LocalProtocolError naming the spec.
        """
        from txamqp_next.errors import LocalProtocolError

        for version in ("0-8", "0-9", "0-9-1"):
            path = SPEC_FILES[version]
            if not path.exists():
                self.fail(f"{path} is missing: apt-get install amqp-specs")
            client = await self.connect(spec=str(path))
            pool = ChannelPool(client, size=2)
            oks = await defer.gatherResults(
                [pool.queue_declare(queue="", exclusive=True) for _ in range(4)],
                consumeErrors=True,
            )
            self.assertEqual(len({ok.queue for ok in oks}), 4)
            await self.assertFailure(
                pool.queue_declare(queue=unique("missing"), passive=True), NotFound
            )
            failure = await self.assertFailure(pool.invoke("confirm.select"), LocalProtocolError)
            self.assertIn(str(path), str(failure))
            await pool.close()
            await client.close()
