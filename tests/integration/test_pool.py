# -*- test-case-name: tests.integration.test_pool -*-
"""
L{txamqp_next.pool.ChannelPool} against the real broker: many declarations
in flight at once, an error confined to its call, a recovering connection.
"""

from __future__ import annotations

from twisted.internet import defer

from tests.integration.broker import BROKER, BrokerTestCase, async_test, reactor, unique
from txamqp_next.errors import NotFound
from txamqp_next.pool import ChannelPool
from txamqp_next.recovery import connect_recovering


class PoolTests(BrokerTestCase):
    """
    Calls spread over pooled channels.
    """

    @async_test
    async def test_many_declarations(self) -> None:
        """
        500 exclusive queues declared at once through a pool of 32 channels
        are all declared, with their names, on at most 32 channels; then
        all deleted the same way.
        """
        client = await self.connect()
        pool = ChannelPool(client, size=32)
        names = [unique(f"pool-{i}") for i in range(500)]
        oks = await defer.gatherResults(
            [pool.queue_declare(queue=name, exclusive=True) for name in names],
            consumeErrors=True,
        )
        self.assertEqual([ok.queue for ok in oks], names)
        self.assertLessEqual(pool.channels, 32)
        deleted = await defer.gatherResults(
            [pool.queue_delete(queue=name) for name in names], consumeErrors=True
        )
        self.assertEqual([ok.message_count for ok in deleted], [0] * 500)
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
