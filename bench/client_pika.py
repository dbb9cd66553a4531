"""
The benchmark workloads with pika 1.4's Twisted adapter
(C{pika.adapters.twisted_connection.TwistedProtocolConnection}).

    python -m bench.client_pika --workload publish --count 100000 --size 100
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer, endpoints, task

from bench import common
from bench.common import BenchError, Meter, check_body

CLIENT = "pika"


def sleep(reactor: Any, seconds: float = 0) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


async def connect(reactor: Any, url: str) -> TwistedProtocolConnection:
    params = pika.URLParameters(url)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, params.host, params.port)
    conn = await endpoints.connectProtocol(endpoint, TwistedProtocolConnection(params))
    await conn.ready
    return conn


async def close(conn: TwistedProtocolConnection) -> None:
    await conn.close()


async def wait_held(reactor: Any, ch: Any, queue: str, count: int) -> None:
    while True:
        frame = await ch.queue_declare(queue=queue, passive=True)
        held = frame.method.message_count
        if held == count:
            return
        if held > count:
            raise BenchError(f"{held} messages in {queue}, not {count}")
        await sleep(reactor, 0.005)


async def publish(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "publish")
    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    await ch.queue_declare(queue=queue)
    payloads = common.bodies(args.count, args.size)
    meter = Meter()
    meter.start()
    for start in range(0, args.count, common.PUBLISH_BATCH):
        for payload in payloads[start : start + common.PUBLISH_BATCH]:
            ch.basic_publish("", queue, payload)
        await sleep(reactor)
    await wait_held(reactor, ch, queue, args.count)
    meter.stop()
    await close(conn)
    common.drain_and_check(args.url, queue, args.count, args.size)
    return common.result(args, meter)


async def confirm(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "confirm")
    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    await ch.queue_declare(queue=queue)
    await ch.confirm_delivery()
    payloads = common.bodies(args.count, args.size)
    count = args.count
    start, done = common.confirm_window(count, lambda i: ch.basic_publish("", queue, payloads[i]))
    meter = Meter()
    meter.start()
    start()
    await done
    meter.stop()
    await close(conn)
    common.drain_and_check(args.url, queue, count, args.size)
    return common.result(args, meter)


async def _consume_all(ch: Any, queue_obj: Any, count: int, size: int) -> None:
    for i in range(count):
        message = await queue_obj.get()
        check_body(i, size, message.body)
        ch.basic_ack(delivery_tag=message.method.delivery_tag)


async def consume(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "consume")
    common.prefill(args.url, queue, args.count, args.size)
    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    await ch.basic_qos(prefetch_count=common.PREFETCH)
    meter = Meter()
    meter.start()
    queue_obj, tag = await ch.basic_consume(queue=queue)
    await _consume_all(ch, queue_obj, args.count, args.size)
    meter.stop()
    await ch.basic_cancel(tag)
    frame = await ch.queue_delete(queue=queue)
    if frame.method.message_count != 0:
        raise BenchError(f"{frame.method.message_count} messages left in {queue}")
    await close(conn)
    return common.result(args, meter)


async def rpc(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "rpc")
    server = await connect(reactor, args.url)
    sch = await server.channel()
    await sch.queue_declare(queue=queue, exclusive=True)
    requests, _ = await sch.basic_consume(queue=queue, auto_ack=True)

    def on_request(message: Any) -> None:
        props = message.properties
        sch.basic_publish(
            "",
            props.reply_to,
            message.body,
            pika.BasicProperties(correlation_id=props.correlation_id),
        )
        next_request()

    def next_request() -> None:
        # the last get fails when the connection closes at the end
        requests.get().addCallbacks(on_request, lambda _: None)

    next_request()

    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    frame = await ch.queue_declare(queue="", exclusive=True)
    reply_queue = frame.method.queue
    replies, _ = await ch.basic_consume(queue=reply_queue, auto_ack=True)
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
            "",
            queue,
            payloads[i],
            pika.BasicProperties(reply_to=reply_queue, correlation_id=corr),
        )
        reply = await replies.get()
        latencies.append(perf_counter() - t0)
        if reply.properties.correlation_id != corr:
            raise BenchError(f"reply {reply.properties.correlation_id!r} to request {corr}")
        check_body(i, size, reply.body)
    meter.stop()
    await close(conn)
    await close(server)
    return common.result(args, meter, **common.rpc_extra(latencies))


async def large(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "large")
    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    await ch.queue_declare(queue=queue, exclusive=True)
    await ch.basic_qos(prefetch_count=common.LARGE_PREFETCH)
    count, size = args.count, args.size
    # made before the meter starts, as the floor's and the other workloads' are
    payloads = common.bodies(count, size)
    meter = Meter()
    meter.start()
    for start in range(0, count, common.LARGE_BATCH):
        for i in range(start, min(start + common.LARGE_BATCH, count)):
            ch.basic_publish("", queue, payloads[i])
        await sleep(reactor)
    queue_obj, tag = await ch.basic_consume(queue=queue)
    await _consume_all(ch, queue_obj, count, size)
    meter.stop()
    await ch.basic_cancel(tag)
    await close(conn)
    return common.result(args, meter)


async def declare(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    prefix = common.queue_name(CLIENT, "declare")
    names = [f"{prefix}-{i}" for i in range(args.count)]
    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    meter = Meter()
    meter.start()
    frames = await defer.gatherResults(
        [ch.queue_declare(queue=name, exclusive=True) for name in names], consumeErrors=True
    )
    for name, frame in zip(names, frames, strict=True):
        if frame.method.queue != name:
            raise BenchError(f"declared {frame.method.queue!r}, not {name!r}")
    deleted = await defer.gatherResults(
        [ch.queue_delete(queue=name) for name in names], consumeErrors=True
    )
    if len(deleted) != len(names):
        raise BenchError(f"{len(deleted)} deletes answered, not {len(names)}")
    meter.stop()
    await close(conn)
    return common.result(args, meter)


WORKLOADS = {
    "publish": publish,
    "confirm": confirm,
    "consume": consume,
    "rpc": rpc,
    "large": large,
    "declare": declare,
}


def main(argv: list[str] | None = None) -> None:
    args = common.parse_args(CLIENT, argv)
    workload = common.pick(args, WORKLOADS, "has no Thrift transport")
    common.run_twisted(args, lambda reactor: workload(reactor, args))


if __name__ == "__main__":
    main()
