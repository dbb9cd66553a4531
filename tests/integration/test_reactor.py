# -*- test-case-name: tests.integration.test_reactor -*-
"""
The reactor the integration suite runs on is the one the test command asked
for: C{scripts/run_tests.py} runs this package a second time under
C{--reactor=asyncio} and says so in C{TXAMQP_NEXT_EXPECT_REACTOR}.
"""

from __future__ import annotations

import asyncio
import os

from tests.integration.broker import BrokerTestCase, async_test, reactor


class ReactorTests(BrokerTestCase):
    """
    Which reactor carries the broker traffic.
    """

    @async_test
    async def test_expected_reactor(self) -> None:
        """
        Under TXAMQP_NEXT_EXPECT_REACTOR=asyncio the reactor is
        AsyncioSelectorReactor and a broker round trip runs inside a running
        asyncio event loop; otherwise it is not the asyncio reactor.
        """
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        expected = os.environ.get("TXAMQP_NEXT_EXPECT_REACTOR", "default")
        self.assertIn(expected, ("asyncio", "default"))
        _, ch = await self.channel()
        await ch.queue_declare(queue="", exclusive=True)
        if expected == "asyncio":
            self.assertIsInstance(reactor(), AsyncioSelectorReactor)
            loop = reactor()._asyncioEventloop
            self.assertTrue(loop.is_running())
            self.assertIs(asyncio.get_running_loop(), loop)
        else:
            self.assertNotIsInstance(reactor(), AsyncioSelectorReactor)
