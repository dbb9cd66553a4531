"""
Fault tests of the recovering connection on private RabbitMQ nodes: brokers
restarted and killed under publishers and consumers that contain no
recovery code of their own.  Each test logs a line of figures
(C{recovery figures: ...}) that C{docs/reliability.md} quotes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.application.internet import backoffPolicy
from twisted.internet import defer, threads
from twisted.logger import Logger

from tests.integration.broker import BROKER, BrokerTestCase, async_test, reactor, sleep, unique
from tests.integration.nodes import PrivateNode, spare_ports
from tests.integration.proxy import Proxy
from tests.thrift.support import Handler, calculator, generate, processor
from txamqp_next.confirms import PublishNacked
from txamqp_next.endpoint import parse_url
from txamqp_next.message import Message
from txamqp_next.recovery import ConnectionEvent, RecoveringConnection, connect_recovering
from txamqp_next.service import ConsumerService
from txamqp_next.thrift import ThriftServerService, connect_client

ROOT = Path(__file__).resolve().parent.parent.parent

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


class ClusterTests(BrokerTestCase):
    """
    A three-node cluster with a quorum queue: the node a publisher and a
    L{ConsumerService} use is killed.
    """

    timeout = 300

    async def cluster(self, size: int = 3) -> list[PrivateNode]:
        """
        Start C{size} private nodes and join them into one cluster.
        """
        nodes = [PrivateNode() for _ in range(size)]
        for node in nodes:
            self.addCleanup(node.stop_in_thread)
        results = await defer.DeferredList(
            [node.start_in_thread() for node in nodes], consumeErrors=True
        )
        for ok, result in results:
            if not ok:
                result.raiseException()

        def join(node: PrivateNode) -> None:
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", nodes[0].name, timeout=60)
            node.ctl("start_app", timeout=60)

        for node in nodes[1:]:
            await threads.deferToThread(join, node)
        return nodes

    @async_test
    async def test_node_killed(self) -> None:
        """
        The publisher and the consumer service, given the three nodes, use
        the first; when it is killed both move to another node and the run
        completes: every confirmed message is consumed.
        """
        total, batch = 3_000, 100
        nodes = await self.cluster()
        urls = [node.url for node in nodes]
        queue = unique("quorum")
        arguments = {"x-queue-type": "quorum"}
        events = EventLog()
        publisher = await connect_recovering(
            reactor(), urls, on_event=events, retry_policy=FAST_RETRY, heartbeat=5
        )
        self.addCleanup(publisher.close)
        pub = await publisher.open_channel()
        await pub.confirm_select()
        await pub.queue_declare(queue=queue, durable=True, arguments=arguments)
        bodies: Counter[bytes] = Counter()

        def handle(message: Message) -> None:
            bodies[message.body] += 1

        service = ConsumerService(
            reactor(),
            urls,
            queue,
            handle,
            prefetch=50,
            queue_arguments=arguments,
            retry_policy=FAST_RETRY,
        )
        service.startService()
        self.addCleanup(service.stopService)
        await service.when_consuming().addTimeout(60, reactor())
        assert publisher.broker is not None and service.connection is not None
        first = publisher.broker.name
        self.assertEqual(service.connection.broker.name, first)  # type: ignore[union-attr]
        self.assertIn(str(nodes[0].port), first)

        nacked: list[bytes] = []

        async def publish(body: bytes) -> None:
            # a quorum queue without a leader (just declared, or its node
            # killed) nacks: the publisher sends such a message again, as an
            # application would, until the cluster has elected a new leader
            # (seconds; more on a loaded two-core machine: 100 tries over 10 s
            # were once not enough in a full run)
            deadline = time.monotonic() + 60
            while True:
                try:
                    await pub.basic_publish(
                        routing_key=queue, body=body, properties={"delivery_mode": 2}
                    )
                    return
                except PublishNacked:
                    nacked.append(body)
                    if time.monotonic() > deadline:
                        raise AssertionError(f"publish {body!r} nacked for 60 s") from None
                    await sleep(0.1)

        started = time.monotonic()
        killed_at = 0.0
        for start in range(0, total, batch):
            if start == total // 3:
                nodes[0].kill()
                killed_at = time.monotonic()
                log.info("fault: killed the first node of the cluster")
            await defer.gatherResults(
                [defer.ensureDeferred(publish(b"%d" % n)) for n in range(start, start + batch)],
                consumeErrors=True,
            )
            await sleep(0.02)
        await wait_until(lambda: len(bodies) >= total, 120, "every message consumed")
        if nacked:
            log.info("{nacked} publishes nacked and sent again", nacked=len(nacked))
        elapsed = time.monotonic() - started

        self.assertEqual(set(bodies), {b"%d" % n for n in range(total)})
        self.assertEqual(events.kinds(), ["connected", "lost", "recovered"])
        moved_to = events.events[-1][1].broker
        self.assertNotEqual(moved_to, first)
        self.assertNotEqual(service.connection.broker.name, first)  # type: ignore[union-attr]
        log.info(
            "recovery figures: cluster: {total} messages through a quorum queue, first node "
            "killed after {third}; lost 0; publisher back on {moved} {failover:.1f}s after the "
            "kill; run {elapsed:.1f}s; consumer deliveries {deliveries}",
            total=total,
            third=total // 3,
            moved=moved_to,
            failover=events.events[-1][0] - killed_at,
            elapsed=elapsed,
            deliveries=sum(bodies.values()),
        )


class ProxyFaultTests(BrokerTestCase):
    """
    The loopback fault proxy cuts, freezes and delays the traffic of a
    recovering connection with a one-second heartbeat; each time it
    recovers within the heartbeat timeout (two intervals) plus its
    back-off.
    """

    timeout = 60
    heartbeat = 1
    #: the most the back-off may wait (FAST_RETRY: 1 s, plus up to 1 s of
    #: jitter) and the time to connect and set up again
    allowance = 2.0 + 1.5

    async def recover_from(self, fault: str) -> None:
        proxy = Proxy(reactor())
        await proxy.start()
        self.addCleanup(proxy.stop)
        events = EventLog()
        connection = await connect_recovering(
            reactor(),
            proxy.url,
            on_event=events,
            retry_policy=FAST_RETRY,
            heartbeat=self.heartbeat,
        )
        self.addCleanup(connection.close)
        channel = await connection.open_channel()
        await channel.confirm_select()
        queue = unique(f"proxy-{fault}")
        await channel.queue_declare(queue=queue, arguments={"x-expires": 60_000})
        got: list[bytes] = []

        def handle(message: Message) -> Awaitable[None]:
            got.append(message.body)
            return message.ack()

        await channel.basic_consume(queue=queue, callback=handle)
        await channel.basic_publish(routing_key=queue, body=b"before")
        await wait_until(lambda: b"before" in got, 10, "the first message")

        started = time.monotonic()
        if fault == "cut":
            proxy.cut()
        elif fault == "freeze":
            proxy.freeze_links()
        else:
            proxy.delay = 4 * self.heartbeat
        await wait_until(lambda: "lost" in events.kinds(), 10, "the loss to be noticed")
        proxy.delay = 0.0
        # published while down: it waits, then goes out
        waiting = channel.basic_publish(routing_key=queue, body=b"after")
        await wait_until(lambda: "recovered" in events.kinds(), 20, "recovery")
        took = time.monotonic() - started
        await waiting
        await wait_until(lambda: b"after" in got, 10, "the message published while down")
        bound = (0 if fault == "cut" else 2 * self.heartbeat) + self.allowance
        self.assertLessEqual(took, bound)
        log.info(
            "recovery figures: proxy {fault}: recovered in {took:.2f}s (bound {bound:.1f}s)",
            fault=fault,
            took=took,
            bound=bound,
        )

    @async_test
    async def test_server_named_queue(self) -> None:
        """
        An exclusive server-named queue goes with its connection: after a
        cut, a new one is declared, its binding (whose routing key was the
        old name) and its consumer follow, so a reply published to the
        name the application now gives reaches the same callback.  The ack
        of a message of the lost connection is dropped, not sent.
        """
        proxy = Proxy(reactor())
        await proxy.start()
        self.addCleanup(proxy.stop)
        events = EventLog()
        connection = await connect_recovering(
            reactor(), proxy.url, on_event=events, retry_policy=FAST_RETRY
        )
        self.addCleanup(connection.close)
        channel = await connection.open_channel()
        old = (await channel.queue_declare(queue="", exclusive=True)).queue
        await channel.queue_bind(queue=old, exchange="amq.direct", routing_key=old)
        got: list[Message] = []
        await channel.basic_consume(queue=old, callback=got.append)
        await channel.basic_publish(exchange="amq.direct", routing_key=old, body=b"before")
        await wait_until(lambda: len(got) == 1, 10, "the first message")
        proxy.cut()
        await wait_until(lambda: "recovered" in events.kinds(), 20, "recovery")
        self.assertIsNone(await got[0].ack())
        new = connection.queue_name(old)
        self.assertNotEqual(new, old)
        self.assertEqual(events.events[-1][1].renamed, {old: new})
        await channel.basic_publish(exchange="amq.direct", routing_key=new, body=b"after")
        await wait_until(lambda: len(got) == 2, 10, "the message to the new name")
        self.assertEqual(got[1].body, b"after")
        await got[1].ack()

    @async_test
    async def test_cut(self) -> None:
        """
        Both sockets dropped: the loss is seen at once.
        """
        await self.recover_from("cut")

    @async_test
    async def test_freeze(self) -> None:
        """
        A connection on which nothing passes any more: the heartbeat timeout
        notices it.
        """
        await self.recover_from("freeze")

    @async_test
    async def test_delay(self) -> None:
        """
        Traffic delayed well past the heartbeat timeout, then back to
        normal.
        """
        await self.recover_from("delay")


class FailoverTests(BrokerTestCase):
    """
    Lists of brokers, as an application gives them, whose first broker is
    down: the connection is made to the next.
    """

    async def reaches(self, brokers: Any, **kwargs: Any) -> RecoveringConnection:
        events = EventLog()
        connection = await connect_recovering(
            reactor(), brokers, on_event=events, retry_policy=FAST_RETRY, **kwargs
        )
        self.addCleanup(connection.close)
        channel = await connection.open_channel()
        ok = await channel.queue_declare(queue="", exclusive=True)
        self.assertTrue(ok.queue)
        self.assertEqual(events.kinds(), ["connected"])
        return connection

    @async_test
    async def test_uri_with_hosts(self) -> None:
        """
        One URI listing a dead host and the broker.
        """
        params = parse_url(BROKER)
        [dead] = spare_ports(1)
        url = BROKER.replace(
            f"@{params.host}:{params.port}", f"@127.0.0.1:{dead},{params.host}:{params.port}"
        )
        connection = await self.reaches(url)
        assert connection.broker is not None
        self.assertIn(str(params.port), connection.broker.name)

    @async_test
    async def test_endpoint_strings(self) -> None:
        """
        Twisted endpoint strings, with the credentials given apart.
        """
        params = parse_url(BROKER)
        [dead] = spare_ports(1)
        connection = await self.reaches(
            [f"tcp:127.0.0.1:{dead}", f"tcp:{params.host}:{params.port}"], params=params
        )
        assert connection.broker is not None
        self.assertEqual(connection.broker.name, f"tcp:{params.host}:{params.port}")


class ThriftFaultTests(BrokerTestCase):
    """
    Thrift calls that outlive their server, and clients that outlive
    their connection.
    """

    timeout = 120

    def twistd(self, service: str, exchange: str, delay: float) -> tuple[Any, Path]:
        """
        Start C{twistd txamqp_next} serving C{service} with a handler whose
        C{add} answers after C{delay} seconds.

        @return: the process and its log file.
        """
        gen = generate()
        logfile = Path(self.mktemp()).resolve()
        logfile.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
        argv += ["-n", "--pidfile=", f"--logfile={logfile}", "txamqp_next"]
        argv += ["--thrift-service", service, "--thrift-exchange", exchange]
        argv += ["--thrift-processor", "tests.thrift.support.make_slow_processor"]
        env = dict(os.environ, TXN_THRIFT_GEN=gen, TXN_THRIFT_ADD_DELAY=str(delay))
        env["TXAMQP_NEXT_URL"] = BROKER
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), gen])
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        return process, logfile

    async def wait_for_log(self, process: Any, logfile: Path, text: str) -> None:
        def logged() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"twistd exited with {process.returncode}")
            return logfile.exists() and text in logfile.read_text()

        await wait_until(logged, 60, repr(text))

    @async_test
    async def test_server_killed_mid_call(self) -> None:
        """
        A server killed (SIGKILL) while it handles a call, with no other
        server running: the call waits in the service's durable queue and
        the next server that starts answers it, within the client's
        timeout.
        """
        service, exchange = unique("thrift-kill"), unique("thrift-kill-x")
        self.addCleanup(self.delete, service, exchange)
        first, first_log = self.twistd(service, exchange, delay=60)
        await self.wait_for_log(first, first_log, f"serving Thrift service {service}")
        connection = await connect_recovering(reactor(), BROKER, retry_policy=FAST_RETRY)
        self.addCleanup(connection.close)
        calc = await connect_client(
            connection, service, calculator().Client, exchange=exchange, timeout=30
        )
        started = time.monotonic()
        call = calc.add(20, 22)
        await self.wait_for_log(first, first_log, "add(20, 22) called")
        first.send_signal(signal.SIGKILL)
        first.wait()
        await sleep(2)
        self.assertNoResult(call)
        second, second_log = self.twistd(service, exchange, delay=0)
        self.assertEqual(await call, 42)
        took = time.monotonic() - started
        self.assertIn("add(20, 22) called", second_log.read_text())
        second.send_signal(signal.SIGTERM)
        log.info(
            "recovery figures: thrift: a call whose only server was killed answered by the next "
            "server {took:.1f}s after it was made (client timeout 30s)",
            took=took,
        )

    async def delete(self, queue: str, exchange: str) -> None:
        amqp = await self.connect()
        channel = await amqp.open_channel()
        await channel.queue_delete(queue=queue)
        await channel.exchange_delete(exchange=exchange)

    @async_test
    async def test_client_outlives_restart(self) -> None:
        """
        A Thrift client and a L{ThriftServerService} on a broker that is
        stopped and started: calls made while the broker is down wait and
        are answered once both sides have recovered, by the same client.
        """
        node = PrivateNode()
        self.addCleanup(node.stop_in_thread)
        await node.start_in_thread()
        service = ThriftServerService(
            reactor(), node.url, "calc", processor(Handler()), retry_policy=FAST_RETRY
        )
        service.startService()
        self.addCleanup(service.stopService)
        await service.when_serving().addTimeout(30, reactor())
        connection = await connect_recovering(reactor(), node.url, retry_policy=FAST_RETRY)
        self.addCleanup(connection.close)
        calc = await connect_client(connection, "calc", calculator().Client, timeout=60)
        self.assertEqual(await calc.add(1, 2), 3)
        await node.shutdown_in_thread()
        during = calc.add(2, 3)
        await node.start_in_thread()
        self.assertEqual(await during, 5)
        self.assertEqual(await calc.add(3, 4), 7)
