# -*- test-case-name: tests.integration.test_asyncio -*-
"""
asyncio applications against the real broker: under Twisted's
C{AsyncioSelectorReactor}, asyncio tasks (not C{ensureDeferred}) await the
library's calls directly and iterate its consumers.

Under the asyncio reactor each test runs its coroutine as an asyncio task
in this process.  Under another reactor there is no asyncio loop to run
tasks on, so each test runs itself in a child trial process with
C{--reactor=asyncio} and passes only if that run passes: the tests never
skip, whatever reactor trial was given.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue

import txamqp_next
from tests.integration.broker import BROKER, BrokerTestCase, reactor, unique
from txamqp_next import errors
from txamqp_next.channel import ConsumerCancelled
from txamqp_next.content import Content
from txamqp_next.message import Message
from txamqp_next.recovery import RecoveringChannel, connect_recovering
from txamqp_next.rpc import RPCClient, respond

ROOT = Path(__file__).resolve().parent.parent.parent


def in_task(
    method: Callable[[Any], Coroutine[Any, Any, None]],
) -> Callable[[Any], Deferred[None]]:
    """
    Run an C{async def} test method as an asyncio task on the asyncio
    reactor's loop; under another reactor, in a child trial process that
    uses the asyncio reactor.
    """

    def run(self: Any) -> Deferred[None]:
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        installed = reactor()
        if not isinstance(installed, AsyncioSelectorReactor):
            return in_asyncio_trial(self, method.__name__)

        async def checked() -> None:
            # the point of these tests: an asyncio task, not Twisted, drives
            # the test's coroutine
            self.assertIsNotNone(asyncio.current_task())
            await method(self)

        return Deferred.fromFuture(installed._asyncioEventloop.create_task(checked()))

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


def in_asyncio_trial(test: Any, name: str) -> Deferred[None]:
    """
    Run the test method C{name} of C{test}'s class in a child trial process
    with the asyncio reactor; fail with its output unless it passes.
    """
    test_id = f"{type(test).__module__}.{type(test).__qualname__}.{name}"
    running = getProcessOutputAndValue(
        sys.executable,
        ["-m", "twisted.trial", "--reactor=asyncio", test_id],
        env=dict(os.environ),
        path=str(ROOT),
    )

    def check(result: tuple[bytes, bytes, int]) -> None:
        out, err, code = result
        text = (out + err).decode(errors="replace")
        if code != 0 or "PASSED (successes=1)" not in text:
            test.fail(f"{test_id} under the asyncio reactor:\n{text[-3000:]}")

    return running.addCallback(check)


class AsyncioTaskTests(BrokerTestCase):
    """
    A connection, its channels and consumers, used from asyncio tasks.
    """

    @in_task
    async def test_channel_calls(self) -> None:
        """
        Inside an asyncio task: connect, open a channel, declare a queue,
        publish in confirm mode (awaited one by one and gathered),
        C{basic_get} and ack, C{async for} over a consumer until it is
        cancelled, then close the channel and the connection.
        """
        client = await txamqp_next.connect(reactor(), BROKER)
        ch = await client.open_channel()
        declared = await ch.queue_declare(queue="", exclusive=True)
        queue = declared.queue
        await ch.confirm_select()
        await ch.basic_publish(routing_key=queue, body=b"m0")
        await asyncio.gather(
            *(ch.basic_publish(routing_key=queue, body=f"m{i}".encode()) for i in (1, 2, 3))
        )
        got = await ch.basic_get(queue=queue)
        assert isinstance(got, Message)
        self.assertEqual(got.body, b"m0")
        await got.ack()

        consumer = await ch.basic_consume(queue=queue)
        bodies = []
        async for message in consumer:
            bodies.append(message.body)
            await message.ack()
            if len(bodies) == 3:
                await consumer.cancel()
        self.assertEqual(bodies, [b"m1", b"m2", b"m3"])
        self.assertIsInstance(await consumer.when_ended(), ConsumerCancelled)
        self.assertIsNone(await ch.basic_get(queue=queue))

        await ch.close()
        reason = await ch.when_closed()
        self.assertEqual(reason.reply_code, 200)
        await client.close()
        await client.when_closed()

    @in_task
    async def test_broker_error(self) -> None:
        """
        A call the broker refuses raises its typed error in the task, and
        the channel's later calls raise it too.
        """
        _, ch = await self.channel()
        with self.assertRaises(errors.NotFound):
            await ch.queue_declare(queue=unique("missing"), passive=True)
        with self.assertRaises(errors.NotFound):
            await ch.basic_qos(prefetch_count=1)

    @in_task
    async def test_cancel_task_closes_channel(self) -> None:
        """
        Cancelling a task that waits for a synchronous call cancels the
        call, which closes its channel (code 200), as cancelling the call's
        L{Deferred} does; the connection stays usable.
        """
        client, ch = await self.channel()

        async def declare() -> Any:
            return await ch.queue_declare(queue="", exclusive=True)

        loop = asyncio.get_running_loop()
        task = loop.create_task(declare())
        # in the same loop iteration as the task's first step: the call is
        # sent and pending, no reply can have been read yet
        loop.call_soon(task.cancel)
        with self.assertRaises(asyncio.CancelledError):
            await task
        reason = await ch.when_closed()
        self.assertEqual(reason.reply_code, 200)
        self.assertIn("cancelled", reason.reply_text)
        other = await client.open_channel()
        await other.queue_declare(queue="", exclusive=True)

    @in_task
    async def test_cancel_waiting_consumer(self) -> None:
        """
        Cancelling a task that waits for a consumer's next message gives up
        its place only: the channel stays open and the next wait gets the
        message.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        consumer = await ch.basic_consume(queue=queue, no_ack=True)
        waiting = asyncio.ensure_future(consumer.__anext__())
        await asyncio.sleep(0.05)
        waiting.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await waiting
        await ch.basic_publish(routing_key=queue, body=b"after")
        message = await asyncio.wait_for(consumer.__anext__(), 10)
        self.assertEqual(message.body, b"after")
        self.assertTrue(ch.is_open)

    @in_task
    async def test_recovering_connection(self) -> None:
        """
        A recovering connection, its channel and consumer, awaited from a
        task.
        """
        connection = await connect_recovering(reactor(), BROKER)
        self.addCleanup(connection.close)
        ch = await connection.open_channel()
        self.assertIsInstance(ch, RecoveringChannel)
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        await ch.confirm_select()
        await ch.basic_publish(routing_key=queue, body=b"one")
        await ch.basic_publish(routing_key=queue, body=b"two")
        got = await ch.basic_get(queue=queue)
        self.assertEqual(got.body, b"one")
        await got.ack()
        consumer = await ch.basic_consume(queue=queue)
        async for message in consumer:
            self.assertEqual(message.body, b"two")
            await message.ack()
            await consumer.cancel()
        self.assertIsInstance(await consumer.when_ended(), ConsumerCancelled)
        await connection.close()

    @in_task
    async def test_rpc(self) -> None:
        """
        An RPC call over direct reply-to, awaited from a task.
        """
        _, server = await self.channel()
        queue = (await server.queue_declare(queue="", exclusive=True)).queue
        await server.basic_consume(
            queue=queue, no_ack=True, callback=lambda request: respond(request, b"4")
        )
        _, ch = await self.channel()
        rpc = await RPCClient(ch, timeout=10).start()
        reply = await rpc.call(routing_key=queue, body=b"2+2")
        self.assertEqual(reply.body, b"4")
        await rpc.stop()

    @in_task
    async def test_txamqp_names(self) -> None:
        """
        The txAMQP shell's calls and C{client.queue(tag).get()}, awaited
        from a task.
        """
        client = await self.connect_txamqp()
        chan = await client.channel(1)
        await chan.channel_open()
        reply = await chan.queue_declare(queue="", exclusive=True)
        queue = reply.queue
        await chan.basic_consume(queue=queue, no_ack=True, consumer_tag="tag")
        deliveries = await client.queue("tag")
        await chan.basic_publish(routing_key=queue, content=Content("hello"))
        received = await deliveries.get(timeout=10)
        self.assertEqual(received.content.body, b"hello")


class AsyncioThriftTests(BrokerTestCase):
    """
    A Thrift call over AMQP awaited from an asyncio task.
    """

    @in_task
    async def test_call(self) -> None:
        """
        A Thrift client's calls, made and awaited inside a task, reach a
        server and return its results.
        """
        from tests.thrift.support import Handler, calculator, processor
        from txamqp_next.thrift import close_client, connect_client, serve

        service, exchange = unique("thrift-svc"), unique("thrift-x")
        server_amqp = await self.connect()
        server = await serve(server_amqp, service, processor(Handler()), exchange=exchange)
        client_amqp = await self.connect()
        calc = await connect_client(client_amqp, service, calculator().Client, exchange=exchange)
        self.assertEqual(await calc.add(2, 3), 5)
        self.assertEqual(await calc.divide(7, 2), 3)
        await close_client(calc)
        await server.stop(5)
        ch = await server_amqp.open_channel()
        await ch.exchange_delete(exchange=exchange)
