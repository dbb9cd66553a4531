"""
The benchmark workloads with txAMQP 0.8.2.

txAMQP needs a spec file; it uses Debian's C{amqp-specs} package (never a
copy in this repository): the RabbitMQ 0-9-1 file, which unlike the plain
0-9-1 one has the C{confirm} class (C{TXAMQP_SPEC} overrides the path).

    python -m bench.client_txamqp --workload publish --count 100000 --size 100
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any
from urllib.parse import urlparse

import txamqp.spec
from twisted.internet import defer, endpoints, task
from txamqp.client import TwistedDelegate
from txamqp.content import Content
from txamqp.protocol import AMQClient

from bench import common
from bench.common import BenchError, Meter, check_body

CLIENT = "txamqp"
SPEC = os.environ.get(
    "TXAMQP_SPEC", "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"
)

#: the exchanges of the thrift workload: txAMQP's usual ones, which are
#: txamqp_next's defaults too
SERVICE_EXCHANGE = "thrift"
RESPONSES_EXCHANGE = "amq.direct"


def sleep(reactor: Any, seconds: float = 0) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


class Delegate(TwistedDelegate):  # type: ignore[misc]
    """
    txAMQP hands broker-initiated methods to the delegate: C{basic.ack} (a
    publisher confirm) calls C{on_ack(delivery_tag, multiple)} when set.
    """

    on_ack: Any = None

    def basic_ack(self, ch: Any, msg: Any) -> None:
        if self.on_ack is None:
            raise BenchError("a basic.ack with no confirm handler")
        self.on_ack(msg.delivery_tag, msg.multiple)


def body_of(message: Any) -> bytes:
    """
    A received body as bytes: txAMQP hands out a C{str} when the bytes
    happen to be valid UTF-8.
    """
    got = message.content.body
    return got if isinstance(got, bytes) else got.encode("utf-8")


async def connect(reactor: Any, url: str) -> tuple[Any, Delegate]:
    u = urlparse(url)
    delegate = Delegate()
    spec = txamqp.spec.load(SPEC)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, u.hostname or "127.0.0.1", u.port or 5672)
    client = await endpoints.connectProtocol(
        endpoint, AMQClient(delegate=delegate, vhost=(u.path[1:] or "/"), spec=spec)
    )
    await client.authenticate(u.username or "guest", u.password or "guest")
    return client, delegate


async def channel(client: Any) -> Any:
    ch = await client.channel(1)
    await ch.channel_open()
    return ch


async def close(client: Any) -> None:
    await client.close(within=5)


async def wait_held(reactor: Any, ch: Any, queue: str, count: int) -> None:
    while True:
        ok = await ch.queue_declare(queue=queue, passive=True)
        if ok.message_count == count:
            return
        if ok.message_count > count:
            raise BenchError(f"{ok.message_count} messages in {queue}, not {count}")
        await sleep(reactor, 0.005)


async def publish(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "publish")
    client, _ = await connect(reactor, args.url)
    ch = await channel(client)
    await ch.queue_declare(queue=queue)
    payloads = common.bodies(args.count, args.size)
    meter = Meter()
    meter.start()
    for start in range(0, args.count, common.PUBLISH_BATCH):
        for payload in payloads[start : start + common.PUBLISH_BATCH]:
            ch.basic_publish(exchange="", routing_key=queue, content=Content(payload))
        await sleep(reactor)
    await wait_held(reactor, ch, queue, args.count)
    meter.stop()
    await close(client)
    common.drain_and_check(args.url, queue, args.count, args.size)
    return common.result(args, meter)


async def confirm(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "confirm")
    client, delegate = await connect(reactor, args.url)
    ch = await channel(client)
    await ch.queue_declare(queue=queue)
    await ch.confirm_select()
    payloads = common.bodies(args.count, args.size)
    count = args.count
    done: defer.Deferred[None] = defer.Deferred()
    # txAMQP has no confirm bookkeeping: track the delivery tags here
    state = {"sent": 0, "acked": 0}

    def on_ack(tag: int, multiple: bool) -> None:
        acked = state["acked"]
        if multiple:
            if tag <= acked:
                raise BenchError(f"ack of {tag} after {acked}")
            newly = tag - acked
        else:
            if tag != acked + 1:
                raise BenchError(f"single ack of {tag}, expected {acked + 1}")
            newly = 1
        state["acked"] = acked + newly
        for _ in range(newly):
            if state["sent"] < count:
                send()
        if state["acked"] == count and not done.called:
            done.callback(None)

    def send() -> None:
        i = state["sent"]
        state["sent"] = i + 1
        ch.basic_publish(exchange="", routing_key=queue, content=Content(payloads[i]))

    delegate.on_ack = on_ack
    meter = Meter()
    meter.start()
    for _ in range(min(common.CONFIRM_WINDOW, count)):
        send()
    await done
    meter.stop()
    await close(client)
    common.drain_and_check(args.url, queue, count, args.size)
    return common.result(args, meter)


async def _consume_all(ch: Any, deliveries: Any, count: int, size: int) -> None:
    for i in range(count):
        message = await deliveries.get()
        check_body(i, size, body_of(message))
        ch.basic_ack(delivery_tag=message.delivery_tag)


async def consume(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "consume")
    common.prefill(args.url, queue, args.count, args.size)
    client, _ = await connect(reactor, args.url)
    ch = await channel(client)
    await ch.basic_qos(prefetch_count=common.PREFETCH)
    meter = Meter()
    meter.start()
    reply = await ch.basic_consume(queue=queue)
    deliveries = await client.queue(reply.consumer_tag)
    await _consume_all(ch, deliveries, args.count, args.size)
    meter.stop()
    await ch.basic_cancel(consumer_tag=reply.consumer_tag)
    ok = await ch.queue_delete(queue=queue)
    if ok.message_count != 0:
        raise BenchError(f"{ok.message_count} messages left in {queue}")
    await close(client)
    return common.result(args, meter)


async def rpc(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "rpc")
    server, _ = await connect(reactor, args.url)
    sch = await channel(server)
    await sch.queue_declare(queue=queue, exclusive=True)
    reply = await sch.basic_consume(queue=queue, no_ack=True)
    requests = await server.queue(reply.consumer_tag)

    def on_request(message: Any) -> None:
        props = message.content.properties
        sch.basic_publish(
            exchange="",
            routing_key=props["reply-to"],
            content=Content(
                body_of(message), properties={"correlation-id": props["correlation-id"]}
            ),
        )
        next_request()

    def next_request() -> None:
        # the last get fails when the connection closes at the end
        requests.get().addCallbacks(on_request, lambda _: None)

    next_request()

    client, _ = await connect(reactor, args.url)
    ch = await channel(client)
    reply_queue = (await ch.queue_declare(queue="", exclusive=True)).queue
    reply = await ch.basic_consume(queue=reply_queue, no_ack=True)
    replies = await client.queue(reply.consumer_tag)
    payloads = common.bodies(args.count, args.size)
    size = args.size
    latencies = []
    perf_counter = time.perf_counter
    meter = Meter()
    meter.start()
    for i in range(args.count):
        t0 = perf_counter()
        corr = str(i)
        ch.basic_publish(
            exchange="",
            routing_key=queue,
            content=Content(
                payloads[i], properties={"reply-to": reply_queue, "correlation-id": corr}
            ),
        )
        message = await replies.get()
        latencies.append(perf_counter() - t0)
        got = message.content.properties.get("correlation-id")
        if got != corr:
            raise BenchError(f"reply {got!r} to request {corr}")
        check_body(i, size, body_of(message))
    meter.stop()
    await close(client)
    await close(server)
    return common.result(args, meter, **common.rpc_extra(latencies))


async def large(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "large")
    client, _ = await connect(reactor, args.url)
    ch = await channel(client)
    await ch.queue_declare(queue=queue, exclusive=True)
    await ch.basic_qos(prefetch_count=common.LARGE_PREFETCH)
    count, size = args.count, args.size
    # made before the meter starts, as the floor's and the other workloads' are
    payloads = common.bodies(count, size)
    meter = Meter()
    meter.start()
    for start in range(0, count, common.LARGE_BATCH):
        for i in range(start, min(start + common.LARGE_BATCH, count)):
            ch.basic_publish(exchange="", routing_key=queue, content=Content(payloads[i]))
        await sleep(reactor)
    reply = await ch.basic_consume(queue=queue)
    deliveries = await client.queue(reply.consumer_tag)
    await _consume_all(ch, deliveries, count, size)
    meter.stop()
    await ch.basic_cancel(consumer_tag=reply.consumer_tag)
    await close(client)
    return common.result(args, meter)


async def declare(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    prefix = common.queue_name(CLIENT, "declare")
    names = [f"{prefix}-{i}" for i in range(args.count)]
    client, _ = await connect(reactor, args.url)
    ch = await channel(client)
    meter = Meter()
    meter.start()
    oks = await defer.gatherResults(
        [ch.queue_declare(queue=name, exclusive=True) for name in names], consumeErrors=True
    )
    for name, ok in zip(names, oks, strict=True):
        if ok.queue != name:
            raise BenchError(f"declared {ok.queue!r}, not {name!r}")
    deleted = await defer.gatherResults(
        [ch.queue_delete(queue=name) for name in names], consumeErrors=True
    )
    if len(deleted) != len(names):
        raise BenchError(f"{len(deleted)} deletes answered, not {len(names)}")
    meter.stop()
    await close(client)
    return common.result(args, meter)


async def thrift(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    """
    txAMQP's own Thrift transport (C{txamqp.contrib.thrift}): a
    C{ThriftAMQClient} connection serving with C{createThriftServer}, and a
    second one calling through C{createThriftClient}
    (C{TwistedAMQPTransport}), on the same exchanges as txamqp_next's.
    """
    from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
    from txamqp.contrib.thrift.client import ThriftTwistedDelegate
    from txamqp.contrib.thrift.protocol import ThriftAMQClient

    from bench import thriftcode

    service = common.queue_name(CLIENT, "thrift")
    module = thriftcode.echo_module()
    handler = thriftcode.EchoHandler()
    factory = TBinaryProtocolFactory()
    u = urlparse(args.url)
    spec = txamqp.spec.load(SPEC)

    async def connect_thrift() -> Any:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, u.hostname or "127.0.0.1", u.port or 5672)
        amqp = await endpoints.connectProtocol(
            endpoint,
            ThriftAMQClient(delegate=ThriftTwistedDelegate(), vhost=(u.path[1:] or "/"), spec=spec),
        )
        await amqp.authenticate(u.username or "guest", u.password or "guest")
        return amqp

    server = await connect_thrift()
    await server.createThriftServer(
        RESPONSES_EXCHANGE,
        SERVICE_EXCHANGE,
        service,
        thriftcode.processor(handler),
        service,
        iprot_factory=factory,
        oprot_factory=factory,
    )
    client = await connect_thrift()
    ch = await client.channel(1)
    await ch.channel_open()
    stub = await client.createThriftClient(
        RESPONSES_EXCHANGE,
        SERVICE_EXCHANGE,
        service,
        module.Client,
        iprot_factory=factory,
        oprot_factory=factory,
    )
    record = await thriftcode.measure(args, stub)
    if handler.calls != 2 * args.count:
        raise BenchError(f"the server handled {handler.calls} calls, not {2 * args.count}")
    await close(client)
    await close(server)
    return record


WORKLOADS = {
    "publish": publish,
    "confirm": confirm,
    "consume": consume,
    "rpc": rpc,
    "large": large,
    "declare": declare,
    "thrift": thrift,
}


def main(argv: list[str] | None = None) -> None:
    args = common.parse_args(CLIENT, argv)
    common.run_twisted(args, lambda reactor: WORKLOADS[args.workload](reactor, args))


if __name__ == "__main__":
    main()
