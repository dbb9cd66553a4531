# -*- test-case-name: tests.integration.test_memory_broker -*-
"""
L{txamqp_next.testing.MemoryBroker} answers as RabbitMQ does: each scenario
runs against the real broker and against the in-memory one, and what the
client sees (replies, error codes and texts, returns) must be the same.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred

import txamqp_next
from tests.integration.broker import BROKER, BrokerTestCase, async_test, reactor, unique
from txamqp_next.confirms import Unroutable
from txamqp_next.connection import AMQPConnection
from txamqp_next.errors import ChannelClosed
from txamqp_next.message import Message
from txamqp_next.testing import MemoryBroker

Connect = Callable[[], Deferred[AMQPConnection]]
Scenario = Callable[[Connect, str], Coroutine[Any, Any, Any]]


def outcome(error: BaseException) -> tuple[str, int, str]:
    """
    What a client sees of a broker error.
    """
    assert isinstance(error, ChannelClosed), repr(error)
    return (type(error).__name__, error.reply_code, error.reply_text)


async def passive_missing(connect: Connect, name: str) -> Any:
    client = await connect()
    ch = await client.open_channel()
    try:
        await ch.queue_declare(queue=name, passive=True)
    except ChannelClosed as e:
        return outcome(e)
    finally:
        await client.close()


async def inequivalent(connect: Connect, name: str) -> Any:
    client = await connect()
    ch = await client.open_channel()
    ok = await ch.queue_declare(queue=name, auto_delete=True)
    try:
        await ch.queue_declare(queue=name, durable=True)
    except ChannelClosed as e:
        return (ok.queue, ok.message_count, outcome(e))
    finally:
        await client.close()


async def exclusive_elsewhere(connect: Connect, name: str) -> Any:
    owner = await connect()
    other = await connect()
    await (await owner.open_channel()).queue_declare(queue=name, exclusive=True)
    try:
        await (await other.open_channel()).queue_declare(queue=name, exclusive=True)
    except ChannelClosed as e:
        return outcome(e)
    finally:
        await other.close()
        await owner.close()


async def unknown_delivery_tag(connect: Connect, name: str) -> Any:
    client = await connect()
    ch = await client.open_channel()
    await ch.basic_ack(delivery_tag=5)
    error = await ch.when_closed()
    await client.close()
    return outcome(error)


async def default_exchange_delete(connect: Connect, name: str) -> Any:
    client = await connect()
    ch = await client.open_channel()
    try:
        await ch.exchange_delete(exchange="")
    except ChannelClosed as e:
        return outcome(e)
    finally:
        await client.close()


async def bind_missing_exchange(connect: Connect, name: str) -> Any:
    client = await connect()
    ch = await client.open_channel()
    await ch.queue_declare(queue=name, exclusive=True)
    try:
        await ch.queue_bind(queue=name, exchange=f"{name}-missing", routing_key="k")
    except ChannelClosed as e:
        return outcome(e)
    finally:
        await client.close()


async def unroutable_and_routed(connect: Connect, name: str) -> Any:
    client = await connect()
    ch = await client.open_channel()
    returned: list[Message] = []
    ch.add_return_handler(returned.append)
    await ch.queue_declare(queue=name, exclusive=True)
    await ch.basic_publish(routing_key=f"{name}-nowhere", body=b"lost", mandatory=True)
    await ch.confirm_select()
    try:
        await ch.basic_publish(routing_key=f"{name}-nowhere", body=b"lost", mandatory=True)
    except Unroutable as e:
        refused = str(e)
    await ch.basic_publish(routing_key=name, body=b"kept", properties={"priority": 3})
    got = await ch.basic_get(queue=name, no_ack=True)
    empty = await ch.basic_get(queue=name)
    await client.close()
    assert got is not None
    return (
        [(back.reply_code, back.reply_text, back.routing_key, back.body) for back in returned],
        refused,
        (got.body, got.properties.priority, got.redelivered, got.message_count),
        empty,
    )


async def requeued_is_redelivered(connect: Connect, name: str) -> Any:
    client = await connect()
    ch = await client.open_channel()
    await ch.queue_declare(queue=name, exclusive=True)
    await ch.confirm_select()
    for body in (b"a", b"b"):
        await ch.basic_publish(routing_key=name, body=body)
    first = await ch.basic_get(queue=name)
    assert first is not None
    await first.reject(requeue=True)
    again = [await ch.basic_get(queue=name, no_ack=True) for _ in range(3)]
    await client.close()
    return [(m.body, m.redelivered) if m else None for m in again]


SCENARIOS: dict[str, Scenario] = {
    "passive_missing": passive_missing,
    "inequivalent": inequivalent,
    "exclusive_elsewhere": exclusive_elsewhere,
    "unknown_delivery_tag": unknown_delivery_tag,
    "default_exchange_delete": default_exchange_delete,
    "bind_missing_exchange": bind_missing_exchange,
    "unroutable_and_routed": unroutable_and_routed,
    "requeued_is_redelivered": requeued_is_redelivered,
}


class ParityTests(BrokerTestCase):
    """
    The same scenario against RabbitMQ and the in-memory broker.
    """

    async def delete_queue(self, name: str) -> None:
        """
        Delete the scenario's queue on RabbitMQ (one never consumed from is
        not auto-deleted); deleting a queue that does not exist succeeds.
        """
        amqp = await self._reach(txamqp_next.connect(reactor(), BROKER))
        channel = await amqp.open_channel()
        await channel.queue_delete(queue=name)
        await amqp.close()

    async def both(self, scenario: Scenario) -> None:
        name = unique("parity")
        self.addCleanup(self.delete_queue, name)
        real = await scenario(lambda: self._reach(txamqp_next.connect(reactor(), BROKER)), name)

        broker = MemoryBroker()
        running = Deferred.fromCoroutine(scenario(broker.open_connection, name))
        for _ in range(100):
            if running.called:
                break
            broker.flush()
        self.assertTrue(running.called, "the scenario did not end on the in-memory broker")
        memory = await running
        self.assertIsNotNone(real)
        self.assertEqual(memory, real)


def _test(name: str, scenario: Scenario) -> Callable[[ParityTests], Deferred[None]]:
    async def test(self: ParityTests) -> None:
        await self.both(scenario)

    test.__name__ = f"test_{name}"
    test.__doc__ = f"C{{{name}}} gives the same outcome on both brokers."
    return async_test(test)


for _name, _scenario in SCENARIOS.items():
    setattr(ParityTests, f"test_{_name}", _test(_name, _scenario))
