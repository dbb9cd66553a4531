# -*- test-case-name: tests.integration.test_bench_scale -*-
"""
The C{scale} workloads with pika 1.4's Twisted adapter
(C{pika.adapters.twisted_connection.TwistedProtocolConnection}), as
C{bench.client_pika} uses it.

    python -m bench.scale_pika --kind channels --n 1000
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer

from bench import common, scale_common
from bench.client_pika import close, connect, sleep
from bench.common import BenchError
from bench.scale_common import Deliveries, Scale

CLIENT = "pika"


def gather(ds: list[defer.Deferred[Any]]) -> defer.Deferred[list[Any]]:
    return defer.gatherResults(ds, consumeErrors=True)


def close_channel(ch: Any) -> defer.Deferred[Any]:
    """
    Close a pika channel: its C{close} returns nothing; C{on_closed} fires
    once the broker has answered.
    """
    ch.close()
    d: defer.Deferred[Any] = ch.on_closed
    return d


async def connections(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    scale_common.limit_files(args.n)
    await close(await connect(reactor, args.url))
    scale = Scale(args)
    scale.opening()
    conns = await gather([defer.ensureDeferred(connect(reactor, args.url)) for _ in range(args.n)])
    scale.opened()
    await sleep(reactor, scale_common.SETTLE)
    scale.idle()
    scale.closing()
    await gather([defer.ensureDeferred(close(conn)) for conn in conns])
    scale.closed()
    return scale.record()


async def channels(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    conn = await connect(reactor, args.url)
    await close_channel(await conn.channel())
    scale = Scale(args)
    scale.opening()
    chans = await gather([conn.channel() for _ in range(args.n)])
    scale.opened()
    scale_common.check_distinct(
        (ch.channel_number for ch in chans), args.n, "channel ids", "channels"
    )
    await sleep(reactor, scale_common.SETTLE)
    scale.idle()
    scale.closing()
    await gather([close_channel(ch) for ch in chans])
    scale.closed()
    await close(conn)
    return scale.record()


async def consumers(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    n = args.n
    prefix, names = scale_common.queue_names(CLIENT, "consumers", n)
    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    await ch.basic_qos(prefetch_count=scale_common.PREFETCH)
    warm = (await ch.queue_declare(queue="", exclusive=True)).method.queue
    _, warm_tag = await ch.basic_consume(queue=warm)
    await ch.basic_cancel(warm_tag)
    await gather([ch.queue_declare(queue=name, auto_delete=True) for name in names])
    deliveries = Deliveries(n, args.messages, args.size)
    done: defer.Deferred[None] = defer.Deferred()

    def on_message(index: int, queue_obj: Any, message: Any) -> None:
        if done.called:
            return
        try:
            last = deliveries.check(index, message.body)
        except BenchError as e:
            done.errback(e)
            return
        ch.basic_ack(delivery_tag=message.method.delivery_tag)
        if last:
            done.callback(None)
        else:
            arm(index, queue_obj)

    def arm(index: int, queue_obj: Any) -> None:
        # pika hands each consumer's messages to a queue of its own; the
        # last get fails when the consumer is cancelled at the end
        queue_obj.get().addCallbacks(
            lambda message: on_message(index, queue_obj, message), lambda _: None
        )

    scale = Scale(args)
    scale.opening()
    started = await gather([ch.basic_consume(queue=name) for name in names])
    scale.opened()
    scale_common.check_distinct((tag for _queue_obj, tag in started), n, "tags", "consumers")
    for index, (queue_obj, _tag) in enumerate(started):
        arm(index, queue_obj)
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
    await gather([ch.basic_cancel(tag) for _queue_obj, tag in started])
    # pika registers each basic_cancel's callback for any cancel-ok on the
    # channel, so all of them fire on the first; one more call, which pika
    # sends only once every earlier call is answered, waits for the rest
    await ch.basic_qos(prefetch_count=scale_common.PREFETCH)
    scale.closed()
    await gather([ch.queue_delete(queue=name) for name in names])
    await close(conn)
    return scale.record()


async def queues(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    _, names = scale_common.queue_names(CLIENT, "queues", args.n)
    conn = await connect(reactor, args.url)
    ch = await conn.channel()
    warm = (await ch.queue_declare(queue="", exclusive=True)).method.queue
    await ch.queue_delete(queue=warm)
    scale = Scale(args)
    scale.opening()
    frames = await gather([ch.queue_declare(queue=name, exclusive=True) for name in names])
    scale.opened()
    scale_common.check_declared(names, (frame.method.queue for frame in frames))
    scale.idle()
    scale.closing()
    await gather([ch.queue_delete(queue=name) for name in names])
    scale.closed()
    await close(conn)
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
