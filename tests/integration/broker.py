"""
Shared helpers for the integration tests: the broker's URL, unique names and
a test case that connects.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

import txamqp_next
from txamqp_next.channel import Channel
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import AMQEndpoint
from txamqp_next.factory import AMQFactory
from txamqp_next.protocol import AMQClient

BROKER = os.environ.get("TXAMQP_NEXT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")

_T = TypeVar("_T")


def unique(prefix: str) -> str:
    """
    A name no other test run uses.
    """
    return f"txamqp-next-test-{prefix}-{uuid.uuid4().hex[:10]}"


def reactor() -> Any:
    from twisted.internet import reactor as installed

    return installed


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor(), seconds, lambda: None)


def async_test(
    method: Callable[[Any], Coroutine[Any, Any, None]],
) -> Callable[[Any], defer.Deferred[None]]:
    """
    Run an C{async def} test method under trial.
    """

    def run(self: Any) -> defer.Deferred[None]:
        return defer.ensureDeferred(method(self))

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


class BrokerTestCase(TestCase):
    """
    A trial test case against the real broker.  With no broker the test
    fails and says how to start one.
    """

    timeout = 60

    async def connect(self, url: str = BROKER, **kwargs: Any) -> AMQPConnection:
        client = await self._reach(txamqp_next.connect(reactor(), url, **kwargs))
        self.addCleanup(client.close)
        return client

    async def _reach(self, connecting: defer.Deferred[_T]) -> _T:
        """
        Wait for a connection attempt; with no broker, fail the test saying
        how to start one.
        """
        try:
            return await connecting
        except ConnectionRefusedError as e:
            self.fail(no_broker(e))
        except Exception as e:
            if "Connection was refused" in str(e):
                self.fail(no_broker(e))
            raise

    async def channel(self, **kwargs: Any) -> tuple[AMQPConnection, Channel]:
        client = await self.connect(**kwargs)
        return client, await client.open_channel()

    async def connect_txamqp(self, url: str = BROKER) -> AMQClient:
        """
        A txAMQP-style client (L{AMQClient}, connected and authenticated by
        L{AMQEndpoint} and L{AMQFactory}), closed at cleanup.
        """
        client = await self._reach(AMQEndpoint.from_uri(reactor(), url).connect(AMQFactory()))
        self.addCleanup(client.close)
        assert isinstance(client, AMQClient)
        return client


async def get_when_there(channel: Channel, queue: str, timeout: float = 5) -> Any:
    """
    C{basic_get} (no ack) until a message is there, polling every 20 ms.

    @return: the L{txamqp_next.message.Message}.
    @raise AssertionError: nothing came within C{timeout} seconds.
    """
    for _ in range(int(timeout / 0.02)):
        message = await channel.basic_get(queue=queue, no_ack=True)
        if message is not None:
            return message
        await sleep(0.02)
    raise AssertionError(f"nothing reached queue {queue} within {timeout}s")


def sockets_to(port: int) -> list[Any]:
    """
    The reactor's readers and writers connected to C{port}: what a failed
    connection attempt must not leave behind.
    """
    found = []
    for selectable in {*reactor().getReaders(), *reactor().getWriters()}:
        get_peer = getattr(selectable, "getPeer", None)
        if get_peer is not None and getattr(get_peer(), "port", None) == port:
            found.append(selectable)
    return found


def no_broker(error: BaseException) -> str:
    return (
        f"no RabbitMQ answers at {BROKER} ({error}); start one with "
        "`rabbitmq-server -detached` (./scripts/dev test does it for you)"
    )
