# -*- test-case-name: tests.integration.test_bench_scale -*-
"""
The C{scale} workloads with txamqp_next, through its public API
(C{connect}, C{open_channel}, C{queue_declare}, C{basic_qos},
C{basic_consume}, C{Message.ack}, C{Consumer.cancel}, C{Channel.close},
C{close}).

    python -m bench.scale_txamqp_next --kind channels --n 1000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

import txamqp_next
from bench import common, scale_common
from bench.common import BenchError
from bench.scale_common import Deliveries, Scale

CLIENT = "txamqp_next"


def sleep(reactor: Any, seconds: float = 0) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


def gather(ds: list[defer.Deferred[Any]]) -> defer.Deferred[list[Any]]:
    return defer.gatherResults(ds, consumeErrors=True)


async def connections(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    scale_common.limit_files(args.n)
    await (await txamqp_next.connect(reactor, args.url)).close()
    scale = Scale(args)
    scale.opening()
    clients = await gather([txamqp_next.connect(reactor, args.url) for _ in range(args.n)])
    scale.opened()
    await sleep(reactor, scale_common.SETTLE)
    scale.idle()
    scale.closing()
    await gather([client.close() for client in clients])
    scale.closed()
    return scale.record()


async def channels(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    client = await txamqp_next.connect(reactor, args.url)
    await (await client.open_channel()).close()
    scale = Scale(args)
    scale.opening()
    chans = await gather([client.open_channel() for _ in range(args.n)])
    scale.opened()
    scale_common.check_distinct((ch.id for ch in chans), args.n, "channel ids", "channels")
    await sleep(reactor, scale_common.SETTLE)
    scale.idle()
    scale.closing()
    await gather([ch.close() for ch in chans])
    scale.closed()
    await client.close()
    return scale.record()


async def consumers(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    n = args.n
    prefix, names = scale_common.queue_names(CLIENT, "consumers", n)
    client = await txamqp_next.connect(reactor, args.url)
    ch = await client.open_channel()
    await ch.basic_qos(prefetch_count=scale_common.PREFETCH)
    warm = (await ch.queue_declare(queue="", exclusive=True)).queue
    await (await ch.basic_consume(queue=warm, callback=lambda m: None)).cancel()
    await gather([ch.queue_declare(queue=name, auto_delete=True) for name in names])
    deliveries = Deliveries(n, args.messages, args.size)
    done: defer.Deferred[None] = defer.Deferred()

    def callback_for(index: int) -> Callable[[txamqp_next.Message], None]:
        def on_message(message: txamqp_next.Message) -> None:
            if done.called:
                return
            try:
                last = deliveries.check(index, message.body)
            except BenchError as e:
                done.errback(e)
                return
            message.ack()
            if last:
                done.callback(None)

        return on_message

    callbacks = [callback_for(i) for i in range(n)]
    scale = Scale(args)
    scale.opening()
    started = await gather(
        [
            ch.basic_consume(queue=name, callback=callback)
            for name, callback in zip(names, callbacks, strict=True)
        ]
    )
    scale.opened()
    scale_common.check_distinct((c.consumer_tag for c in started), n, "tags", "consumers")
    await sleep(reactor, scale_common.SETTLE)
    scale.idle()
    scale_common.publish_spread(args.url, prefix, n, args.messages, args.size)
    deliveries.start()
    done.addTimeout(scale_common.DELIVERY_TIMEOUT, reactor)
    try:
        await done
    except defer.TimeoutError:
        raise deliveries.missing() from None
    scale.deliver = deliveries.meter
    scale.closing()
    await gather([consumer.cancel() for consumer in started])
    scale.closed()
    await gather([ch.queue_delete(queue=name) for name in names])
    await client.close()
    return scale.record()


async def queues(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    _, names = scale_common.queue_names(CLIENT, "queues", args.n)
    client = await txamqp_next.connect(reactor, args.url)
    ch = await client.open_channel()
    warm = (await ch.queue_declare(queue="", exclusive=True)).queue
    await ch.queue_delete(queue=warm)
    scale = Scale(args)
    scale.opening()
    oks = await gather([ch.queue_declare(queue=name, exclusive=True) for name in names])
    scale.opened()
    scale_common.check_declared(names, (ok.queue for ok in oks))
    scale.idle()
    scale.closing()
    await gather([ch.queue_delete(queue=name) for name in names])
    scale.closed()
    await client.close()
    return scale.record()


KINDS = {
    "connections": connections,
    "channels": channels,
    "consumers": consumers,
    "queues": queues,
}


def main(argv: list[str] | None = None) -> None:
    args = scale_common.parse_args(CLIENT, argv)
    common.run_twisted(args, lambda reactor: KINDS[args.kind](reactor, args))


if __name__ == "__main__":
    main()
