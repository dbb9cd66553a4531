"""
The benchmark workloads with txamqp_next, through its public API.

    python -m bench.client_txamqp_next --workload publish --count 100000 --size 100
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

import txamqp_next
from bench import common
from bench.common import BenchError, Meter, check_body
from txamqp_next.pool import ChannelPool

CLIENT = "txamqp_next"
#: channels of the pool the declare workload spreads its calls over
DECLARE_POOL = 64


def sleep(reactor: Any, seconds: float = 0) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


async def wait_held(reactor: Any, ch: txamqp_next.Channel, queue: str, count: int) -> None:
    """
    Poll with passive C{queue.declare} until the broker holds C{count}.
    """
    while True:
        ok = await ch.queue_declare(queue=queue, passive=True)
        if ok.message_count == count:
            return
        if ok.message_count > count:
            raise BenchError(f"{ok.message_count} messages in {queue}, not {count}")
        await sleep(reactor, 0.005)


async def publish(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "publish")
    client = await txamqp_next.connect(reactor, args.url)
    ch = await client.open_channel()
    await ch.queue_declare(queue=queue)
    payloads = common.bodies(args.count, args.size)
    meter = Meter()
    meter.start()
    for start in range(0, args.count, common.PUBLISH_BATCH):
        for payload in payloads[start : start + common.PUBLISH_BATCH]:
            ch.basic_publish(exchange="", routing_key=queue, body=payload)
        await sleep(reactor)
    await wait_held(reactor, ch, queue, args.count)
    meter.stop()
    await client.close()
    common.drain_and_check(args.url, queue, args.count, args.size)
    return common.result(args, meter)


async def confirm(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "confirm")
    client = await txamqp_next.connect(reactor, args.url)
    ch = await client.open_channel()
    await ch.queue_declare(queue=queue)
    await ch.confirm_select()
    payloads = common.bodies(args.count, args.size)
    count = args.count
    start, done = common.confirm_window(
        count, lambda i: ch.basic_publish(exchange="", routing_key=queue, body=payloads[i])
    )
    meter = Meter()
    meter.start()
    start()
    await done
    meter.stop()
    await client.close()
    common.drain_and_check(args.url, queue, count, args.size)
    return common.result(args, meter)


def _checking_consumer(
    count: int, size: int
) -> tuple[Callable[[txamqp_next.Message], None], defer.Deferred[None]]:
    """
    A consumer callback that checks each body in order and acks it, and a
    Deferred that fires after the C{count}th or fails at the first wrong
    body.
    """
    done: defer.Deferred[None] = defer.Deferred()
    state = {"received": 0}

    def on_message(message: txamqp_next.Message) -> None:
        i = state["received"]
        try:
            check_body(i, size, message.body)
        except BenchError as e:
            if not done.called:
                done.errback(e)
            return
        state["received"] = i + 1
        message.ack()
        if i + 1 == count:
            done.callback(None)

    return on_message, done


async def consume(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "consume")
    common.prefill(args.url, queue, args.count, args.size)
    client = await txamqp_next.connect(reactor, args.url)
    ch = await client.open_channel()
    await ch.basic_qos(prefetch_count=common.PREFETCH)
    count, size = args.count, args.size
    on_message, done = _checking_consumer(count, size)

    meter = Meter()
    meter.start()
    consumer = await ch.basic_consume(queue=queue, callback=on_message)
    await done
    meter.stop()
    await consumer.cancel()
    ok = await ch.queue_delete(queue=queue)
    if ok.message_count != 0:
        raise BenchError(f"{ok.message_count} messages left in {queue}")
    await client.close()
    return common.result(args, meter)


async def rpc(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "rpc")
    server = await txamqp_next.connect(reactor, args.url)
    sch = await server.open_channel()
    await sch.queue_declare(queue=queue, exclusive=True)

    def on_request(message: txamqp_next.Message) -> None:
        props = message.properties
        sch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            body=message.body,
            properties={"correlation_id": props.correlation_id},
        )

    await sch.basic_consume(queue=queue, no_ack=True, callback=on_request)

    client = await txamqp_next.connect(reactor, args.url)
    ch = await client.open_channel()
    reply_queue = (await ch.queue_declare(queue="", exclusive=True)).queue
    waiting: list[defer.Deferred[txamqp_next.Message]] = []

    def on_reply(message: txamqp_next.Message) -> None:
        if not waiting:
            raise BenchError(f"unexpected reply {message!r}")
        waiting.pop().callback(message)

    await ch.basic_consume(queue=reply_queue, no_ack=True, callback=on_reply)
    payloads = common.bodies(args.count, args.size)
    size = args.size
    latencies = []
    perf_counter = time.perf_counter
    meter = Meter()
    meter.start()
    for i in range(args.count):
        t0 = perf_counter()
        d: defer.Deferred[txamqp_next.Message] = defer.Deferred()
        waiting.append(d)
        corr = str(i)
        ch.basic_publish(
            exchange="",
            routing_key=queue,
            body=payloads[i],
            properties={"reply_to": reply_queue, "correlation_id": corr},
        )
        reply = await d
        latencies.append(perf_counter() - t0)
        if reply.properties.correlation_id != corr:
            raise BenchError(f"reply {reply.properties.correlation_id!r} to request {corr}")
        check_body(i, size, reply.body)
    meter.stop()
    await client.close()
    await server.close()
    return common.result(args, meter, **common.rpc_extra(latencies))


async def large(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "large")
    client = await txamqp_next.connect(reactor, args.url)
    ch = await client.open_channel()
    await ch.queue_declare(queue=queue, exclusive=True)
    await ch.basic_qos(prefetch_count=common.LARGE_PREFETCH)
    count, size = args.count, args.size
    # made before the meter starts, as the floor's and the other workloads' are
    payloads = common.bodies(count, size)
    on_message, done = _checking_consumer(count, size)

    meter = Meter()
    meter.start()
    for start in range(0, count, common.LARGE_BATCH):
        for i in range(start, min(start + common.LARGE_BATCH, count)):
            ch.basic_publish(exchange="", routing_key=queue, body=payloads[i])
        await sleep(reactor)
    consumer = await ch.basic_consume(queue=queue, callback=on_message)
    await done
    meter.stop()
    await consumer.cancel()
    await client.close()
    return common.result(args, meter)


async def declare(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    prefix = common.queue_name(CLIENT, "declare")
    names = [f"{prefix}-{i}" for i in range(args.count)]
    client = await txamqp_next.connect(reactor, args.url)
    # the feature for many calls at once: each in flight on a channel of
    # its own (opened within the meter, as they are needed)
    pool = ChannelPool(client, size=DECLARE_POOL)
    meter = Meter()
    meter.start()
    oks = await defer.gatherResults(
        [pool.queue_declare(queue=name, exclusive=True) for name in names], consumeErrors=True
    )
    for name, ok in zip(names, oks, strict=True):
        if ok.queue != name:
            raise BenchError(f"declared {ok.queue!r}, not {name!r}")
    deleted = await defer.gatherResults(
        [pool.queue_delete(queue=name) for name in names], consumeErrors=True
    )
    if len(deleted) != len(names):
        raise BenchError(f"{len(deleted)} deletes answered, not {len(names)}")
    meter.stop()
    await client.close()
    return common.result(args, meter)


async def thrift(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    from bench import thriftcode
    from txamqp_next.thrift import close_client, connect_client, serve

    service = common.queue_name(CLIENT, "thrift")
    module = thriftcode.echo_module()
    handler = thriftcode.EchoHandler()
    server_amqp = await txamqp_next.connect(reactor, args.url)
    server = await serve(
        server_amqp, service, thriftcode.processor(handler), prefetch=common.PREFETCH
    )
    client = await txamqp_next.connect(reactor, args.url)
    stub = await connect_client(client, service, module.Client, timeout=60)
    record = await thriftcode.measure(args, stub)
    if handler.calls != 2 * args.count:
        raise BenchError(f"the server handled {handler.calls} calls, not {2 * args.count}")
    await close_client(stub)
    await client.close()
    await server.stop()
    await server_amqp.close()
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
