"""
Flow control against the real broker: a memory alarm blocks the connection
(on a private node), a full write buffer holds publishes, and per-consumer
QoS limits unacknowledged deliveries.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from tests.integration.broker import BrokerTestCase, async_test, reactor, sleep, unique
from tests.integration.nodes import PrivateNode
from tests.integration.proxy import Proxy
from txamqp_next import errors
from txamqp_next.channel import Channel
from txamqp_next.message import Message


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await sleep(0.05)


async def drain(ch: Channel, queue: str) -> list[bytes]:
    bodies = []
    while True:
        message = await ch.basic_get(queue=queue, no_ack=True)
        if message is None:
            return bodies
        bodies.append(message.body)


async def publish_until_blocked(
    client: Any, ch: Channel, queue: str, name: bytes, timeout: float = 20
) -> list[defer.Deferred[None]]:
    """
    Publish C{name-0}, C{name-1}, ... every 50 ms until the broker blocks
    the connection.  RabbitMQ blocks a connection when it publishes while an
    alarm is raised, and the alarm may be raised a moment after
    C{rabbitmqctl} returned: a single publish made at once may come before
    it, and then nothing blocks.

    @return: the publishes made.
    """
    deadline = time.monotonic() + timeout
    sent: list[defer.Deferred[None]] = []
    while client.blocked is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for connection.blocked ({name!r})")
        sent.append(ch.basic_publish(routing_key=queue, body=b"%s-%d" % (name, len(sent))))
        await sleep(0.05)
    return sent


def record_sends(transport: Any) -> list[Any]:
    """
    Spy on a TCP transport's sends.

    @return: a list that gets what each later C{writeSomeData} call returns:
        the bytes sent, or the error.
    """
    results: list[Any] = []
    send = transport.writeSomeData

    def spy(data: Any) -> Any:
        result = send(data)
        results.append(result)
        return result

    transport.writeSomeData = spy
    return results


class BlockedTests(BrokerTestCase):
    """
    C{connection.blocked} and C{unblocked} from a broker with a memory
    alarm, on a private node.
    """

    timeout = 120

    @async_test
    async def test_memory_alarm_holds_publishes(self) -> None:
        """
        With the memory high watermark set to 0 the broker blocks the
        connection: client.blocked and the handlers say so, publishes issued
        meanwhile stay pending; when the alarm clears they go out in order
        and are confirmed.  A disk alarm (a free-disk limit above what the
        disk has) blocks and unblocks the same way.
        """
        node = PrivateNode()
        self.addCleanup(node.stop_in_thread)
        await node.start_in_thread()
        client = await self.connect(node.url)
        changes: list[tuple[bool, str]] = []
        client.add_blocked_handler(lambda blocked, reason: changes.append((blocked, reason)))
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue=unique("blocked"))).queue
        await ch.confirm_select()
        await node.ctl_in_thread("set_vm_memory_high_watermark", "0")
        first = await publish_until_blocked(client, ch, queue, b"first")
        self.assertTrue(client.publishing_paused)
        writable = client.when_writable()
        held = [ch.basic_publish(routing_key=queue, body=b"%d" % i) for i in range(5)]
        await sleep(0.5)
        for d in [*held, writable]:
            self.assertFalse(d.called)
        await node.ctl_in_thread("set_vm_memory_high_watermark", "0.4")
        await defer.gatherResults([*first, *held, writable])
        self.assertIsNone(client.blocked)
        self.assertEqual(len(changes), 2)
        self.assertEqual(changes[0][0], True)
        self.assertIn("memory", changes[0][1].lower())
        self.assertEqual(changes[1], (False, ""))
        firsts = [b"first-%d" % i for i in range(len(first))]
        self.assertEqual(await drain(ch, queue), [*firsts, b"0", b"1", b"2", b"3", b"4"])
        # a disk alarm blocks the same way
        await node.ctl_in_thread("set_disk_free_limit", "1000000GB")
        trigger = await publish_until_blocked(client, ch, queue, b"disk")
        self.assertIn("disk", (client.blocked or "").lower())
        late = ch.basic_publish(routing_key=queue, body=b"after")
        await sleep(0.3)
        self.assertFalse(late.called)
        await node.ctl_in_thread("set_disk_free_limit", "1MB")
        await defer.gatherResults([*trigger, late])
        self.assertEqual(changes[-1], (False, ""))
        disks = [b"disk-%d" % i for i in range(len(trigger))]
        self.assertEqual(await drain(ch, queue), [*disks, b"after"])
        await ch.queue_delete(queue=queue)


@implementer(IPushProducer)
class Publisher:
    """
    An application producer publishing numbered bodies while not paused.
    """

    def __init__(self, ch: Channel, queue: str, count: int, size: int) -> None:
        self.ch, self.queue, self.count, self.size = ch, queue, count, size
        self.sent = 0
        self.paused = False
        self.pauses = 0
        self.done: defer.Deferred[None] = defer.Deferred()
        self.results: list[defer.Deferred[None]] = []

    def run(self) -> None:
        while not self.paused and self.sent < self.count:
            body = (b"%08d" % self.sent).ljust(self.size, b".")
            self.results.append(self.ch.basic_publish(routing_key=self.queue, body=body))
            self.sent += 1
        if self.sent == self.count and not self.done.called:
            self.done.callback(None)

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self.run()

    def stopProducing(self) -> None:
        self.paused = True


class BackpressureTests(BrokerTestCase):
    """
    The transport's write buffer holds publishes back on a real socket.
    """

    timeout = 120

    @async_test
    async def test_publishes_held_then_released(self) -> None:
        """
        Publishing 32 MiB at once (2,048 messages of 16 KiB) fills the
        socket's buffer (up to 4 MiB here) and then the transport's: the
        client pauses, later publishes stay pending, and once the socket
        drains they all go out, in order.  The connection goes through an
        in-process proxy, which reads only when the reactor runs: a broker
        on the other core could otherwise drain the socket as fast as the
        loop fills it.
        """
        proxy = Proxy(reactor())
        await proxy.start()
        self.addCleanup(proxy.stop)
        client, ch = await self.channel(url=proxy.url)
        queue = (await ch.queue_declare(queue=unique("held"), exclusive=True)).queue
        ds = [ch.basic_publish(routing_key=queue, body=b"%04d" % i * 4096) for i in range(2048)]
        self.assertTrue(client.publishing_paused)
        pending = [i for i, d in enumerate(ds) if not d.called]
        self.assertTrue(pending)
        self.assertEqual(pending, list(range(pending[0], 2048)))
        await defer.gatherResults(ds)
        # the last ones written may fill the buffer again, until it drains
        await client.when_writable()
        self.assertFalse(client.publishing_paused)
        ok = await ch.queue_declare(queue=queue, passive=True)
        while ok.message_count < 2048:
            await sleep(0.05)
            ok = await ch.queue_declare(queue=queue, passive=True)
        bodies = await drain(ch, queue)
        self.assertEqual(bodies, [b"%04d" % i * 4096 for i in range(2048)])

    @async_test
    async def test_registered_producer(self) -> None:
        """
        A registered producer publishing 64 MiB in 64 KiB messages is
        paused and resumed by the client; every message arrives, in order.
        """
        client, ch = await self.channel()
        queue = (await ch.queue_declare(queue=unique("producer"), exclusive=True)).queue
        producer = Publisher(ch, queue, count=1024, size=65536)
        client.register_producer(producer)
        producer.run()
        await producer.done
        await defer.gatherResults(producer.results)
        self.assertGreater(producer.pauses, 0)
        consumer = await ch.basic_consume(queue=queue, no_ack=True)
        for i in range(1024):
            message = await consumer.queue.get(timeout=30)
            self.assertEqual(message.body[:8], b"%08d" % i)
            self.assertEqual(len(message.body), 65536)


class QosTests(BrokerTestCase):
    """
    Per-consumer prefetch, and acks held back by slow callbacks.
    """

    @async_test
    async def test_per_consumer_prefetch(self) -> None:
        """
        basic_qos(prefetch_count=2, global_=False) limits each consumer on
        the channel to 2 unacked messages: two consumers hold 2 each.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue=unique("qos"), exclusive=True)).queue
        for i in range(10):
            await ch.basic_publish(routing_key=queue, body=b"%d" % i)
        await ch.basic_qos(prefetch_count=2, global_=False)
        one = await ch.basic_consume(queue=queue)
        two = await ch.basic_consume(queue=queue)
        await sleep(0.3)
        self.assertEqual((len(one.queue), len(two.queue)), (2, 2))
        (await one.queue.get()).ack()
        await sleep(0.3)
        self.assertEqual((len(one.queue), len(two.queue)), (2, 2))
        ok = await ch.queue_declare(queue=queue, passive=True)
        self.assertEqual(ok.message_count, 5)

    @async_test
    async def test_slow_callback_holds_ack(self) -> None:
        """
        A callback acks when the work its Deferred stands for is done
        (basic_consume callbacks never ack by themselves): with prefetch 1
        the next message waits until that Deferred fires.
        """
        _, ch = await self.channel()
        queue = (await ch.queue_declare(queue=unique("slow"), exclusive=True)).queue
        await ch.basic_qos(prefetch_count=1)
        work: list[defer.Deferred[None]] = []
        seen: list[bytes] = []

        def callback(message: Message) -> defer.Deferred[None]:
            seen.append(message.body)
            d: defer.Deferred[None] = defer.Deferred()
            d.addCallback(lambda _: message.ack())
            work.append(d)
            return d

        await ch.basic_consume(queue=queue, callback=callback)
        await ch.basic_publish(routing_key=queue, body=b"one")
        await ch.basic_publish(routing_key=queue, body=b"two")
        await wait_for(lambda: seen == [b"one"], "the first delivery")
        await sleep(0.4)
        self.assertEqual(seen, [b"one"])
        work[0].callback(None)
        await wait_for(lambda: seen == [b"one", b"two"], "the second delivery")
        work[1].callback(None)


class DirectSendTests(BrokerTestCase):
    """
    On a plain TCP connection whose transport buffer is empty, the client
    writes to the socket at once; when the socket refuses (the peer reset
    the connection), the transport takes the data and reports the loss.
    """

    timeout = 60

    @async_test
    async def test_written_before_publish_returns(self) -> None:
        """
        A publish leaves nothing in Twisted's buffer (it went to the socket)
        and reaches the queue; the transport reads and buffers 256 KiB.
        """
        client, ch = await self.channel()
        transport: Any = client.transport
        self.assertEqual(transport.bufferSize, 262144)
        queue = (await ch.queue_declare(queue=unique("direct"), exclusive=True)).queue
        await ch.basic_publish(routing_key=queue, body=b"at once")
        self.assertEqual((transport.dataBuffer, transport._tempDataLen), (b"", 0))
        self.assertEqual(await drain(ch, queue), [b"at once"])

    @async_test
    async def test_no_delay(self) -> None:
        """
        The connection's socket has Nagle's algorithm off (C{TCP_NODELAY}),
        so a small frame written behind another unacknowledged one is not
        held for the broker's delayed ACK; the connection works as before.
        """
        client, ch = await self.channel()
        transport: Any = client.transport
        self.assertTrue(transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        queue = (await ch.queue_declare(queue=unique("nodelay"), exclusive=True)).queue
        await ch.basic_publish(routing_key=queue, body=b"small")
        self.assertEqual(await drain(ch, queue), [b"small"])

    @async_test
    async def test_large_sends(self) -> None:
        """
        The transport hands its socket up to 1 MiB per send, not Twisted's
        128 KiB (a turn of the reactor each), and a 4 MiB publish sent that
        way arrives whole.
        """
        client, ch = await self.channel()
        transport: Any = client.transport
        self.assertEqual(transport.SEND_LIMIT, 1 << 20)
        sizes = record_sends(transport)
        # a send buffer that takes a whole 1 MiB send when empty (the
        # kernel's own starts at 16 KiB and grows)
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        queue = (await ch.queue_declare(queue=unique("sends"), exclusive=True)).queue
        body = bytes(range(256)) * (1 << 14)
        await ch.basic_publish(routing_key=queue, body=body)
        self.assertEqual(await drain(ch, queue), [body])
        self.assertLessEqual(max(sizes), 1 << 20)
        self.assertGreater(max(sizes), 128 * 1024)

    @async_test
    async def test_socket_refuses(self) -> None:
        """
        When the socket refuses a send (here: its sending side is shut
        down), publishing neither raises nor hangs: the transport gets the
        data and meets the error itself, the client reports the connection
        lost, and later publishes fail with it.
        """
        client, ch = await self.channel()
        transport: Any = client.transport
        results = record_sends(transport)
        # out of the handling of received frames (the channel's open-ok),
        # where a publish would wait for the write after the batch
        await sleep(0)
        transport.socket.shutdown(socket.SHUT_WR)
        published = ch.basic_publish(routing_key="nowhere", body=b"refused")
        self.assertEqual(len(results), 1)
        self.assertIsInstance(results[0], Exception)
        self.assertGreater(transport._tempDataLen, 0)
        await client.when_closed()
        self.assertIsInstance(client.closed, errors.ConnectionClosed)
        self.assertIsNone(self.successResultOf(published))
        late = ch.basic_publish(routing_key="nowhere", body=b"late")
        self.failureResultOf(late, errors.ConnectionClosed)
