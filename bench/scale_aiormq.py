# -*- test-case-name: tests.integration.test_bench_scale -*-
"""
The C{scale} workloads with aiormq 7.2 (asyncio), as C{bench.client_aiormq}
uses it.  Channels are opened without publisher confirms, as the other
clients' are.

    python -m bench.scale_aiormq --kind channels --n 1000
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiormq

from bench import common, scale_common
from bench.common import BenchError
from bench.scale_common import Deliveries, Scale

CLIENT = "aiormq"


async def connections(args: argparse.Namespace) -> dict[str, Any]:
    scale_common.limit_files(args.n)
    await (await aiormq.connect(args.url)).close()
    scale = Scale(args)
    scale.opening()
    conns = await asyncio.gather(*(aiormq.connect(args.url) for _ in range(args.n)))
    scale.opened()
    await asyncio.sleep(scale_common.SETTLE)
    scale.idle()
    scale.closing()
    await asyncio.gather(*(conn.close() for conn in conns))
    scale.closed()
    return scale.record()


async def channels(args: argparse.Namespace) -> dict[str, Any]:
    conn = await aiormq.connect(args.url)
    await (await conn.channel(publisher_confirms=False)).close()
    scale = Scale(args)
    scale.opening()
    chans = await asyncio.gather(*(conn.channel(publisher_confirms=False) for _ in range(args.n)))
    scale.opened()
    scale_common.check_distinct((ch.number for ch in chans), args.n, "channel ids", "channels")
    await asyncio.sleep(scale_common.SETTLE)
    scale.idle()
    scale.closing()
    await asyncio.gather(*(ch.close() for ch in chans))
    scale.closed()
    await conn.close()
    return scale.record()


async def consumers(args: argparse.Namespace) -> dict[str, Any]:
    n = args.n
    prefix, names = scale_common.queue_names(CLIENT, "consumers", n)
    conn = await aiormq.connect(args.url)
    ch = await conn.channel(publisher_confirms=False)
    await ch.basic_qos(prefetch_count=scale_common.PREFETCH)

    async def ignore(message: Any) -> None:
        pass

    warm = str((await ch.queue_declare("", exclusive=True)).queue)
    await ch.basic_cancel(str((await ch.basic_consume(warm, ignore)).consumer_tag))
    await asyncio.gather(*(ch.queue_declare(name, auto_delete=True) for name in names))
    deliveries = Deliveries(n, args.messages, args.size)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def callback_for(index: int) -> Callable[[Any], Coroutine[Any, Any, None]]:
        async def on_message(message: Any) -> None:
            if done.done():
                return
            try:
                last = deliveries.check(index, message.body)
            except BenchError as e:
                done.set_exception(e)
                return
            await message.channel.basic_ack(message.delivery.delivery_tag)
            if last and not done.done():
                done.set_result(None)

        return on_message

    callbacks = [callback_for(i) for i in range(n)]
    scale = Scale(args)
    scale.opening()
    oks = await asyncio.gather(
        *(ch.basic_consume(name, callback) for name, callback in zip(names, callbacks, strict=True))
    )
    scale.opened()
    scale_common.check_distinct((ok.consumer_tag for ok in oks), n, "tags", "consumers")
    await asyncio.sleep(scale_common.SETTLE)
    scale.idle()
    scale_common.publish_spread(args.url, prefix, n, args.messages, args.size)
    deliveries.start()
    try:
        await asyncio.wait_for(done, scale_common.DELIVERY_TIMEOUT)
    except asyncio.TimeoutError:
        raise deliveries.missing() from None
    scale.deliver = deliveries.meter
    scale.closing()
    await asyncio.gather(*(ch.basic_cancel(str(ok.consumer_tag)) for ok in oks))
    scale.closed()
    await asyncio.gather(*(ch.queue_delete(name) for name in names))
    await conn.close()
    return scale.record()


async def queues(args: argparse.Namespace) -> dict[str, Any]:
    _, names = scale_common.queue_names(CLIENT, "queues", args.n)
    conn = await aiormq.connect(args.url)
    ch = await conn.channel(publisher_confirms=False)
    await ch.queue_delete(str((await ch.queue_declare("", exclusive=True)).queue))
    scale = Scale(args)
    scale.opening()
    oks = await asyncio.gather(*(ch.queue_declare(name, exclusive=True) for name in names))
    scale.opened()
    scale_common.check_declared(names, (ok.queue for ok in oks))
    scale.idle()
    scale.closing()
    await asyncio.gather(*(ch.queue_delete(name) for name in names))
    scale.closed()
    await conn.close()
    return scale.record()


KINDS = {
    "connections": connections,
    "channels": channels,
    "consumers": consumers,
    "queues": queues,
}


def main(argv: list[str] | None = None) -> None:
    args = scale_common.parse_args(CLIENT, argv)
    common.run_asyncio(args, lambda: KINDS[args.kind](args))


if __name__ == "__main__":
    main()
