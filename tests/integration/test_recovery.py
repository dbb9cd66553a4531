"""
Fault tests of the recovering connection on private RabbitMQ nodes: brokers
restarted and killed under publishers and consumers that contain no
recovery code of their own.  Each test logs a line of figures
(C{recovery figures: ...}) that C{docs/reliability.md} quotes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.application.internet import backoffPolicy
from twisted.internet import defer
from twisted.logger import Logger

from tests.integration.broker import BrokerTestCase, async_test, reactor, sleep, unique
from tests.integration.nodes import PrivateNode
from txamqp_next.message import Message
from txamqp_next.recovery import ConnectionEvent, RecoveringConnection, connect_recovering

log = Logger()

#: reconnect quickly: a node restarts in a few seconds
FAST_RETRY = backoffPolicy(initialDelay=0.2, maxDelay=1.0, factor=1.5)


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """
    Poll C{check} every 50 ms until it holds.

    @raise AssertionError: naming C{what} after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await sleep(0.05)


class EventLog:
    """
    The events of a recovering connection, with when they came.
    """

    def __init__(self) -> None:
        self.events: list[tuple[float, ConnectionEvent]] = []

    def __call__(self, event: ConnectionEvent) -> None:
        self.events.append((time.monotonic(), event))

    def kinds(self) -> list[str]:
        return [event.kind for _, event in self.events]

    def outages(self) -> list[float]:
        """
        Seconds from each C{lost} to the next C{recovered}.
        """
        out = []
        lost_at: float | None = None
        for at, event in self.events:
            if event.kind == "lost":
                lost_at = at
            elif event.kind == "recovered" and lost_at is not None:
                out.append(at - lost_at)
                lost_at = None
        return out

    def republished(self) -> int:
        return sum(event.republished for _, event in self.events)


class Consumed:
    """
    What a consumer callback saw: each body and whether the broker marked
    it redelivered.  It acks each message.
    """

    def __init__(self) -> None:
        self.bodies: Counter[bytes] = Counter()
        self.first_deliveries: Counter[bytes] = Counter()
        self.redelivered = 0

    def __call__(self, message: Message) -> Awaitable[None]:
        self.bodies[message.body] += 1
        if message.method.redelivered:
            self.redelivered += 1
        else:
            self.first_deliveries[message.body] += 1
        return message.ack()

    @property
    def total(self) -> int:
        return sum(self.bodies.values())


class RestartTests(BrokerTestCase):
    """
    A publisher in confirm mode and a consumer, both on recovering
    connections, while their broker is stopped and started and killed.
    """

    timeout = 300

    async def node(self) -> PrivateNode:
        node = PrivateNode()
        self.addCleanup(node.stop_in_thread)
        await node.start_in_thread()
        return node

    async def recovering(self, url: str, events: EventLog) -> RecoveringConnection:
        connection = await connect_recovering(
            reactor(), url, on_event=events, retry_policy=FAST_RETRY, heartbeat=5
        )
        self.addCleanup(connection.close)
        return connection

    @async_test
    async def test_restarts_and_kills(self) -> None:
        """
        20,000 persistent messages published in confirm mode to a durable
        queue and consumed, while the broker is stopped and started three
        times and killed twice: every publish is confirmed, every confirmed
        message is consumed (0 lost), and the messages published twice are
        no more than the publishes sent again because they were unconfirmed
        at a loss.  The application code below has no recovery code.
        """
        total, batch = 20_000, 250
        node = await self.node()
        queue = unique("restarts")
        publisher_events, consumer_events = EventLog(), EventLog()

        # the application: a publisher and a consumer, as without faults
        publisher = await self.recovering(node.url, publisher_events)
        pub = await publisher.open_channel()
        await pub.confirm_select()
        await pub.queue_declare(queue=queue, durable=True)
        consumer = await self.recovering(node.url, consumer_events)
        sub = await consumer.open_channel()
        await sub.basic_qos(prefetch_count=200)
        await sub.queue_declare(queue=queue, durable=True)
        consumed = Consumed()
        await sub.basic_consume(queue=queue, callback=consumed)
        published = 0

        async def publish_all() -> None:
            # batches at an application's pace (at most 2,500 messages a
            # second), up to four of them waiting for their confirms, so
            # that the faults below hit publishes in flight
            nonlocal published
            batches: list[defer.Deferred[Any]] = []
            for start in range(0, total, batch):
                batches.append(
                    defer.gatherResults(
                        [
                            pub.basic_publish(
                                routing_key=queue,
                                body=b"%d" % n,
                                properties={"delivery_mode": 2},
                            )
                            for n in range(start, start + batch)
                        ],
                        consumeErrors=True,
                    )
                )
                published = start + batch
                await sleep(0.1)
                while len([b for b in batches if not b.called]) > 4:
                    await next(b for b in batches if not b.called)
            await defer.gatherResults(batches, consumeErrors=True)

        started = time.monotonic()
        publishing = defer.ensureDeferred(publish_all())

        # the faults, spread over the run
        async def restart() -> None:
            log.info("fault: stopping the broker")
            await node.shutdown_in_thread()
            log.info("fault: starting the broker")
            await node.start_in_thread()
            log.info("fault: broker started")

        async def kill() -> None:
            log.info("fault: killing the broker")
            node.kill()
            await sleep(0.5)
            log.info("fault: starting the broker")
            await node.start_in_thread()
            log.info("fault: broker started")

        def recovered(count: int) -> bool:
            return all(
                events.kinds().count("recovered") >= count
                for events in (publisher_events, consumer_events)
            )

        faults = [restart, kill, restart, kill, restart]
        for index, fault in enumerate(faults):
            # each fault hits connections that are up, with publishes in flight
            mark = (index + 1) * total // (len(faults) + 1)
            await wait_until(lambda i=index: recovered(i), 60, f"recovery {index}")  # type: ignore[misc]
            await wait_until(lambda m=mark: published >= m, 120, f"{mark} publishes")  # type: ignore[misc]
            await fault()
        await wait_until(lambda: recovered(len(faults)), 60, "the last recovery")

        await publishing
        await wait_until(lambda: len(consumed.bodies) >= total, 120, "every message consumed")
        elapsed = time.monotonic() - started

        expected = {b"%d" % n for n in range(total)}
        self.assertEqual(set(consumed.bodies), expected, "messages lost or unknown")
        self.assertEqual(publisher_events.kinds().count("lost"), len(faults))
        self.assertEqual(publisher_events.kinds().count("recovered"), len(faults))
        self.assertEqual(consumer_events.kinds().count("recovered"), len(faults))
        published_twice = sum(n - 1 for n in consumed.first_deliveries.values() if n > 1)
        republished = publisher_events.republished()
        self.assertLessEqual(published_twice, republished)
        log.info(
            "recovery figures: restarts: {total} messages, {faults} faults (3 restarts, 2 kills) "
            "in {elapsed:.1f}s; lost 0; sent again {republished}; published twice "
            "{published_twice}; consumer redeliveries {redelivered} (deliveries {deliveries}); "
            "publisher outages {outages}",
            total=total,
            faults=len(faults),
            elapsed=elapsed,
            republished=republished,
            published_twice=published_twice,
            redelivered=consumed.redelivered,
            deliveries=consumed.total,
            outages=", ".join(f"{s:.1f}s" for s in publisher_events.outages()),
        )
