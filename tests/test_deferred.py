"""
L{txamqp_next._deferred}: the library's L{Deferred}s can be awaited by
asyncio tasks, and stay plain L{Deferred}s everywhere else.

The tests run their own asyncio event loop, without a reactor: a task
awaits a L{Deferred} that C{loop.call_soon} or C{loop.call_later} fires.
"""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import FrameFactory, SentParser
from txamqp_next._connection import Credentials
from txamqp_next._deferred import AsyncioDeferred, adopt, fail, from_coroutine, may_fail, succeed
from txamqp_next.channel import Channel
from txamqp_next.connection import AMQPConnection

_T = TypeVar("_T")


class Boom(Exception):
    """
    What the failing L{Deferred}s of these tests fail with.
    """


class LoopTestCase(SynchronousTestCase):
    """
    A test case with a fresh asyncio event loop of its own.
    """

    def setUp(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self.loop.close)

    def run_task(self, make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """
        Run C{make()} as an asyncio task until it is done.

        @return: what it returned.
        @raise Exception: what it raised.
        """
        return self.loop.run_until_complete(self.loop.create_task(make()))

    def fire_later(self, d: Deferred[Any], value: object, delay: float = 0.0) -> None:
        """
        Fire C{d} with C{value} (an exception: fail it) from the loop later.
        """
        if isinstance(value, BaseException):
            self.loop.call_later(delay, d.errback, value)
        else:
            self.loop.call_later(delay, d.callback, value)


class TaskAwaitTests(LoopTestCase):
    """
    An asyncio task awaits an L{AsyncioDeferred} as it awaits a future.
    """

    def test_result(self) -> None:
        """
        A task awaiting an L{AsyncioDeferred} fired later gets its result.
        """
        d: Deferred[int] = AsyncioDeferred()
        self.fire_later(d, 42, 0.01)

        async def main() -> int:
            return await d

        self.assertEqual(self.run_task(main), 42)

    def test_plain_deferred_fails(self) -> None:
        """
        The same task awaiting a plain L{Deferred} is refused by asyncio:
        this is what L{AsyncioDeferred} is for.
        """
        d: Deferred[int] = Deferred()
        self.fire_later(d, 42)

        async def main() -> int:
            return await d

        exc = self.assertRaises(RuntimeError, self.run_task, main)
        self.assertIn("bad yield", str(exc))

    def test_failure(self) -> None:
        """
        A task awaiting an L{AsyncioDeferred} that fails gets its exception,
        and the failure counts as handled (nothing is logged).
        """
        d: Deferred[int] = AsyncioDeferred()
        self.fire_later(d, Boom("no"))

        async def main(awaited: Deferred[int]) -> int:
            return await awaited

        exc = self.assertRaises(Boom, self.run_task, functools.partial(main, d))
        self.assertEqual(str(exc), "no")
        del d
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(Boom), [])

    def test_already_fired(self) -> None:
        """
        L{succeed} and L{fail} give L{AsyncioDeferred}s that a task awaits
        without waiting.
        """

        async def main() -> tuple[int, str]:
            value = await succeed(7)
            try:
                await fail(Boom("x"))
            except Boom as e:
                return value, str(e)
            raise AssertionError("no failure")

        self.assertEqual(self.run_task(main), (7, "x"))

    def test_result_not_consumed(self) -> None:
        """
        Awaiting leaves the result in the L{Deferred}: two tasks awaiting
        the same one both get it, and so do callbacks added afterwards.
        """
        d: Deferred[str] = AsyncioDeferred()
        self.fire_later(d, "shared", 0.01)

        async def one() -> str:
            return await d

        async def main() -> list[str]:
            return list(await asyncio.gather(one(), one()))

        self.assertEqual(self.run_task(main), ["shared", "shared"])
        self.assertEqual(self.successResultOf(d), "shared")

    def test_waits_for_chained_deferred(self) -> None:
        """
        A L{Deferred} whose callback returned an unfired L{Deferred} is
        called but paused: the task waits until the inner one fires.
        """
        outer: Deferred[int] = AsyncioDeferred()
        inner: Deferred[int] = Deferred()
        outer.addCallback(lambda _: inner)
        outer.callback(0)
        self.assertTrue(outer.called)
        self.fire_later(inner, 5, 0.01)

        async def main() -> int:
            return await outer

        self.assertEqual(self.run_task(main), 5)

    def test_gather_and_wait_for(self) -> None:
        """
        C{asyncio.gather} and C{asyncio.wait_for} take L{AsyncioDeferred}s
        as they take futures.
        """
        a: Deferred[int] = AsyncioDeferred()
        b: Deferred[int] = AsyncioDeferred()
        self.fire_later(a, 1)
        self.fire_later(b, 2, 0.01)

        async def main() -> tuple[list[int], int]:
            both = list(await asyncio.gather(a, succeed(3)))
            return both, await asyncio.wait_for(b, 5)

        self.assertEqual(self.run_task(main), ([1, 3], 2))

    def test_library_coroutine_in_task_step(self) -> None:
        """
        A library coroutine run by L{from_coroutine} starts within the
        calling task's step, but Twisted drives it: its own awaits take the
        plain L{Deferred} path, and the task awaits the L{Deferred}
        L{from_coroutine} gives.
        """
        d: Deferred[int] = AsyncioDeferred()
        self.fire_later(d, 1, 0.01)

        async def library() -> int:
            first = await d
            second = await succeed(10)
            return first + second

        async def main() -> int:
            return await from_coroutine(library())

        self.assertEqual(self.run_task(main), 11)

    def test_awaited_in_nested_coroutines(self) -> None:
        """
        The task's coroutine may await through other coroutines and an
        async iterator before reaching the L{AsyncioDeferred}.
        """
        ds: list[Deferred[int]] = [AsyncioDeferred() for _ in range(3)]
        for i, d in enumerate(ds):
            self.fire_later(d, i, 0.001 * i)

        class Stream:
            def __init__(self) -> None:
                self.left = list(ds)

            def __aiter__(self) -> Stream:
                return self

            async def __anext__(self) -> int:
                if not self.left:
                    raise StopAsyncIteration
                return await self.left.pop(0)

        async def collect() -> list[int]:
            return [value async for value in Stream()]

        async def main() -> list[int]:
            return await collect()

        self.assertEqual(self.run_task(main), [0, 1, 2])


class TaskCancelTests(LoopTestCase):
    """
    Cancelling the asyncio task cancels the L{AsyncioDeferred} it awaits.
    """

    def test_cancel_task(self) -> None:
        """
        The task ends with C{asyncio.CancelledError}; the L{Deferred}'s
        canceller ran and its failure is not left unhandled.
        """
        cancelled: list[Deferred[Any]] = []
        d: Deferred[int] = AsyncioDeferred(cancelled.append)

        async def waiting(awaited: Deferred[int]) -> int:
            return await awaited

        async def main(awaited: Deferred[int]) -> None:
            task = asyncio.ensure_future(waiting(awaited))
            await asyncio.sleep(0)
            task.cancel()
            await task

        self.assertRaises(asyncio.CancelledError, self.run_task, functools.partial(main, d))
        self.assertEqual(cancelled, [d])
        self.assertTrue(d.called)
        self.assertIsNone(self.successResultOf(d))
        del d
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(CancelledError), [])

    def test_fired_before_cancel_runs(self) -> None:
        """
        A L{Deferred} that fired just before the task was cancelled is not
        cancelled.
        """
        cancelled: list[Deferred[Any]] = []
        d: Deferred[int] = AsyncioDeferred(cancelled.append)

        async def waiting() -> int:
            return await d

        async def main() -> None:
            task = asyncio.ensure_future(waiting())
            await asyncio.sleep(0)
            d.callback(3)
            task.cancel()
            await task

        self.assertRaises(asyncio.CancelledError, self.run_task, main)
        self.assertEqual(cancelled, [])


class PlainAwaitTests(SynchronousTestCase):
    """
    Outside asyncio tasks an L{AsyncioDeferred} is a L{Deferred}.
    """

    def test_from_coroutine(self) -> None:
        """
        Awaited by a coroutine that L{Deferred.fromCoroutine} drives (no
        event loop at all), it waits and fires as a L{Deferred} does.
        """
        d: Deferred[int] = AsyncioDeferred()

        async def main() -> int:
            return await d + 1

        result = Deferred.fromCoroutine(main())
        self.assertNoResult(result)
        d.callback(1)
        self.assertEqual(self.successResultOf(result), 2)

    def test_adopt(self) -> None:
        """
        L{adopt} makes a plain L{Deferred} an L{AsyncioDeferred} in place,
        keeping its callbacks; a L{Deferred} of another subclass is left
        alone.
        """
        d: Deferred[int] = Deferred()
        seen: list[int] = []
        d.addCallback(seen.append)
        self.assertIs(adopt(d), d)
        self.assertIs(type(d), AsyncioDeferred)
        d.callback(4)
        self.assertEqual(seen, [4])

        class Other(Deferred[int]):
            pass

        other = Other()
        self.assertIs(type(adopt(other)), Other)

    def test_from_coroutine_type(self) -> None:
        """
        L{from_coroutine} gives an L{AsyncioDeferred} whose cancellation
        reaches what the coroutine awaits.
        """
        inner: Deferred[int] = AsyncioDeferred()

        async def main() -> int:
            return await inner

        d = from_coroutine(main())
        self.assertIs(type(d), AsyncioDeferred)
        d.cancel()
        self.assertTrue(inner.called)
        self.failureResultOf(d, CancelledError)


class ChannelTests(LoopTestCase):
    """
    A channel's calls, awaited by an asyncio task.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.client = AMQPConnection(clock=self.clock, credentials=Credentials())
        self.frames = FrameFactory(self.client.spec)
        self.parser = SentParser(self.client.spec)
        self.transport = StringTransport()
        self.client.makeConnection(self.transport)
        for frame in (self.frames.start(), self.frames.tune(heartbeat=0), self.frames.open_ok()):
            self.client.dataReceived(frame)
        self.sent()

    def sent(self) -> list[str]:
        """
        The names of the methods the client wrote since the last call.
        """
        self.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return [method.NAME for method in self.parser.methods_sent(data)]

    def open_channel(self) -> Channel:
        d = self.client.open_channel()
        self.assertEqual(self.sent(), ["channel.open"])
        self.client.dataReceived(self.frames.method(1, "channel.open-ok"))
        return self.successResultOf(d)

    def test_types(self) -> None:
        """
        The calls of a connection and a channel give L{AsyncioDeferred}s,
        fired or not.
        """
        opening = self.client.open_channel()
        self.assertIs(type(opening), AsyncioDeferred)
        self.client.dataReceived(self.frames.method(1, "channel.open-ok"))
        channel = self.successResultOf(opening)
        for d in (
            channel.queue_declare(queue="q"),
            channel.basic_publish(routing_key="q", body=b"x"),
            channel.basic_ack(delivery_tag=1),
            channel.invoke("basic.qos", prefetch_count=1),
            channel.when_closed(),
            self.client.when_closed(),
            self.client.when_open(),
            self.client.when_writable(),
        ):
            self.assertIs(type(d), AsyncioDeferred, d)

    def test_call_in_task(self) -> None:
        """
        A task awaits a synchronous call whose reply the broker sends later.
        """
        channel = self.open_channel()

        async def main() -> str:
            ok = await channel.queue_declare(queue="q")
            return str(ok.queue)

        def reply() -> None:
            self.assertEqual(self.sent(), ["queue.declare"])
            self.client.dataReceived(
                self.frames.method(
                    1, "queue.declare-ok", queue="q", message_count=0, consumer_count=0
                )
            )

        self.loop.call_later(0.01, reply)
        self.assertEqual(self.run_task(main), "q")

    def test_cancel_task_closes_channel(self) -> None:
        """
        Cancelling a task waiting on a synchronous call cancels the call,
        which closes the channel, as cancelling its L{Deferred} does.
        """
        channel = self.open_channel()

        async def declare() -> object:
            return await channel.queue_declare(queue="q")

        async def main() -> None:
            task = asyncio.ensure_future(declare())
            await asyncio.sleep(0)
            task.cancel()
            await task

        self.assertRaises(asyncio.CancelledError, self.run_task, main)
        self.assertEqual(self.sent(), ["queue.declare", "channel.close"])
        closing = channel.when_closed()
        self.client.dataReceived(self.frames.method(1, "channel.close-ok"))
        self.assertEqual(self.successResultOf(closing).reply_code, 200)


class MayFailTests(SynchronousTestCase):
    """
    L{may_fail} tells a L{Deferred} that has succeeded already (which needs
    no error handler) from one still pending or failed.
    """

    def test_may_fail(self) -> None:
        failed = fail(Boom())
        self.assertEqual(
            [may_fail(d) for d in (succeed(None), Deferred(), failed)], [False, True, True]
        )
        self.failureResultOf(failed, Boom)
