"""
The benchmark workloads with aiormq 7.2 (asyncio).

    python -m bench.client_aiormq --workload publish --count 100000 --size 100
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiormq
from pamqp import commands as spec
from pamqp.commands import Basic

from bench import common
from bench.common import BenchError, Meter, check_body

CLIENT = "aiormq"


async def wait_held(ch: Any, queue: str, count: int) -> None:
    while True:
        ok = await ch.queue_declare(queue, passive=True)
        if ok.message_count == count:
            return
        if ok.message_count > count:
            raise BenchError(f"{ok.message_count} messages in {queue}, not {count}")
        await asyncio.sleep(0.005)


async def publish(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "publish")
    conn = await aiormq.connect(args.url)
    ch = await conn.channel(publisher_confirms=False)
    await ch.queue_declare(queue)
    payloads = common.bodies(args.count, args.size)
    meter = Meter()
    meter.start()
    for start in range(0, args.count, common.PUBLISH_BATCH):
        # wait=False: hand the frames over without waiting for the socket
        # to drain (aiormq's fastest way; the broker's count ends the run)
        for payload in payloads[start : start + common.PUBLISH_BATCH]:
            await ch.basic_publish(payload, routing_key=queue, wait=False)
        await asyncio.sleep(0)
    await wait_held(ch, queue, args.count)
    meter.stop()
    await conn.close()
    common.drain_and_check(args.url, queue, args.count, args.size)
    return common.result(args, meter)


async def confirm(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "confirm")
    conn = await aiormq.connect(args.url)
    ch = await conn.channel(publisher_confirms=True)
    await ch.queue_declare(queue)
    payloads = common.bodies(args.count, args.size)
    count = args.count
    window = asyncio.Semaphore(common.CONFIRM_WINDOW)

    async def send(payload: bytes) -> None:
        try:
            confirmation = await ch.basic_publish(payload, routing_key=queue)
        finally:
            window.release()
        if not isinstance(confirmation, Basic.Ack):
            raise BenchError(f"publish not acked: {confirmation!r}")

    meter = Meter()
    meter.start()
    tasks = []
    for payload in payloads:
        await window.acquire()
        tasks.append(asyncio.ensure_future(send(payload)))
    await asyncio.gather(*tasks)
    meter.stop()
    await conn.close()
    common.drain_and_check(args.url, queue, count, args.size)
    return common.result(args, meter)


async def _consume_all(ch: Any, queue: str, count: int, size: int) -> str:
    done = asyncio.get_running_loop().create_future()
    state = {"received": 0}

    async def on_message(message: Any) -> None:
        i = state["received"]
        try:
            check_body(i, size, message.body)
        except BenchError as e:
            if not done.done():
                done.set_exception(e)
            return
        state["received"] = i + 1
        await message.channel.basic_ack(message.delivery.delivery_tag)
        if i + 1 == count and not done.done():
            done.set_result(None)

    ok = await ch.basic_consume(queue, on_message)
    await done
    return str(ok.consumer_tag)


async def consume(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "consume")
    common.prefill(args.url, queue, args.count, args.size)
    conn = await aiormq.connect(args.url)
    ch = await conn.channel()
    await ch.basic_qos(prefetch_count=common.PREFETCH)
    meter = Meter()
    meter.start()
    tag = await _consume_all(ch, queue, args.count, args.size)
    meter.stop()
    await ch.basic_cancel(tag)
    ok = await ch.queue_delete(queue)
    if ok.message_count != 0:
        raise BenchError(f"{ok.message_count} messages left in {queue}")
    await conn.close()
    return common.result(args, meter)


async def rpc(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "rpc")
    server = await aiormq.connect(args.url)
    sch = await server.channel(publisher_confirms=False)
    await sch.queue_declare(queue, exclusive=True)

    async def on_request(message: Any) -> None:
        props = message.header.properties
        await sch.basic_publish(
            message.body,
            routing_key=props.reply_to,
            properties=spec.Basic.Properties(correlation_id=props.correlation_id),
            wait=False,
        )

    await sch.basic_consume(queue, on_request, no_ack=True)

    conn = await aiormq.connect(args.url)
    ch = await conn.channel(publisher_confirms=False)
    reply_queue = (await ch.queue_declare("", exclusive=True)).queue
    waiting: list[asyncio.Future[Any]] = []

    async def on_reply(message: Any) -> None:
        if not waiting:
            raise BenchError(f"unexpected reply {message!r}")
        waiting.pop().set_result(message)

    await ch.basic_consume(reply_queue, on_reply, no_ack=True)
    payloads = common.bodies(args.count, args.size)
    size = args.size
    loop = asyncio.get_running_loop()
    latencies = []
    perf_counter = time.perf_counter
    meter = Meter()
    meter.start()
    for i in range(args.count):
        t0 = perf_counter()
        future = loop.create_future()
        waiting.append(future)
        corr = str(i)
        await ch.basic_publish(
            payloads[i],
            routing_key=queue,
            properties=spec.Basic.Properties(reply_to=reply_queue, correlation_id=corr),
            wait=False,
        )
        reply = await future
        latencies.append(perf_counter() - t0)
        got = reply.header.properties.correlation_id
        if got != corr:
            raise BenchError(f"reply {got!r} to request {corr}")
        check_body(i, size, reply.body)
    meter.stop()
    await conn.close()
    await server.close()
    return common.result(args, meter, **common.rpc_extra(latencies))


async def large(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "large")
    conn = await aiormq.connect(args.url)
    ch = await conn.channel(publisher_confirms=False)
    await ch.queue_declare(queue, exclusive=True)
    await ch.basic_qos(prefetch_count=common.LARGE_PREFETCH)
    count, size = args.count, args.size
    # made before the meter starts, as the floor's and the other workloads' are
    payloads = common.bodies(count, size)
    meter = Meter()
    meter.start()
    for start in range(0, count, common.LARGE_BATCH):
        await asyncio.gather(
            *(
                ch.basic_publish(payloads[i], routing_key=queue)
                for i in range(start, min(start + common.LARGE_BATCH, count))
            )
        )
    tag = await _consume_all(ch, queue, count, size)
    meter.stop()
    await ch.basic_cancel(tag)
    await conn.close()
    return common.result(args, meter)


async def declare(args: argparse.Namespace) -> dict[str, Any]:
    prefix = common.queue_name(CLIENT, "declare")
    names = [f"{prefix}-{i}" for i in range(args.count)]
    conn = await aiormq.connect(args.url)
    ch = await conn.channel()
    meter = Meter()
    meter.start()
    oks = await asyncio.gather(*(ch.queue_declare(name, exclusive=True) for name in names))
    for name, ok in zip(names, oks, strict=True):
        if ok.queue != name:
            raise BenchError(f"declared {ok.queue!r}, not {name!r}")
    deleted = await asyncio.gather(*(ch.queue_delete(name) for name in names))
    if len(deleted) != len(names):
        raise BenchError(f"{len(deleted)} deletes answered, not {len(names)}")
    meter.stop()
    await conn.close()
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
    common.run_asyncio(args, lambda: workload(args))


if __name__ == "__main__":
    main()
