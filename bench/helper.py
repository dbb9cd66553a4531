"""
Fill, check and delete benchmark queues, in a process of its own, with
pika's blocking client (not the client being measured, so a bug in it cannot
hide a bug in the checks).

    python -m bench.helper prefill --queue Q --count N --size B
    python -m bench.helper drain --queue Q --count N --size B
    python -m bench.helper delete --queue Q
    python -m bench.helper spread --queue PREFIX --queues N --count C --size B

C{spread} publishes bodies 0 to C-1 round-robin over the existing queues
C{PREFIX-0} to C{PREFIX-<N-1>} (body C{i} to queue C{i % N}), on one channel,
so each queue gets its share in order.
"""

from __future__ import annotations

import argparse
import sys
import time

import pika

from bench.common import BROKER_URL, BenchError, body, check_body


def _connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def prefill(url: str, queue: str, count: int, size: int) -> None:
    conn = _connect(url)
    ch = conn.channel()
    ch.queue_declare(queue=queue)
    props = pika.BasicProperties()
    for i in range(count):
        ch.basic_publish("", queue, body(i, size), props)
    # without confirms, wait until the broker holds them all
    deadline = time.monotonic() + 120
    while True:
        held = ch.queue_declare(queue=queue, passive=True).method.message_count
        if held == count:
            break
        if held > count or time.monotonic() > deadline:
            raise BenchError(f"prefill: {held} messages in {queue}, not {count}")
        conn.sleep(0.01)
    conn.close()


def drain(url: str, queue: str, count: int, size: int) -> None:
    conn = _connect(url)
    ch = conn.channel()
    ok = ch.queue_declare(queue=queue, passive=True)
    if ok.method.message_count != count:
        raise BenchError(f"drain: {ok.method.message_count} messages in {queue}, not {count}")
    ch.basic_qos(prefetch_count=2000)
    deliveries = ch.consume(queue, auto_ack=True, inactivity_timeout=30)
    for index, (_method, _props, got) in enumerate(deliveries):
        if got is None:
            raise BenchError(f"drain: only {index} of {count} messages in {queue}")
        check_body(index, size, got)
        if index + 1 == count:
            break
    ch.cancel()
    ok = ch.queue_delete(queue=queue)
    if ok.method.message_count != 0:
        raise BenchError(f"drain: {ok.method.message_count} extra messages in {queue}")
    conn.close()


def delete(url: str, queue: str) -> None:
    conn = _connect(url)
    ch = conn.channel()
    ch.queue_delete(queue=queue)
    conn.close()


def spread(url: str, prefix: str, queues: int, count: int, size: int) -> None:
    conn = _connect(url)
    ch = conn.channel()
    for i in range(queues):
        # each must exist: without confirms, a message to a missing queue
        # would vanish and the client would only time out
        ch.queue_declare(queue=f"{prefix}-{i}", passive=True)
    props = pika.BasicProperties()
    names = [f"{prefix}-{i}" for i in range(queues)]
    for i in range(count):
        ch.basic_publish("", names[i % queues], body(i, size), props)
    conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.helper")
    parser.add_argument("action", choices=["prefill", "drain", "delete", "spread"])
    parser.add_argument("--url", default=BROKER_URL)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--queues", type=int, default=1, help="spread: how many queues")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args(argv)
    if args.action == "prefill":
        prefill(args.url, args.queue, args.count, args.size)
    elif args.action == "spread":
        spread(args.url, args.queue, args.queues, args.count, args.size)
    elif args.action == "drain":
        drain(args.url, args.queue, args.count, args.size)
    else:
        delete(args.url, args.queue)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(str(e))
