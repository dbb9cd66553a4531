"""
A short tour of txamqp_next against the local RabbitMQ.

It connects, declares a private queue, publishes a few messages with
properties, reads one with basic.get, consumes the rest with an async
iterator, shows a broker error that closes only its channel, and closes.

    python examples/demo.py [AMQP_URL]
"""

from __future__ import annotations

import sys

from twisted.internet import defer, task

import txamqp_next
from txamqp_next.errors import NotFound


async def main(reactor: object, url: str) -> None:
    client = await txamqp_next.connect(reactor, url, connection_name="txamqp_next demo")
    product = client.server_properties.get("product", "?")
    version = client.server_properties.get("version", "?")
    print(f"connected to {product} {version} (heartbeat {client.core.heartbeat}s)")

    ch = await client.open_channel()
    declared = await ch.queue_declare(queue="", exclusive=True)
    queue = declared.queue
    print(f"declared queue {queue}")

    for n in range(1, 6):
        await ch.basic_publish(
            routing_key=queue,
            body=f"message {n}".encode(),
            properties={"content_type": "text/plain", "headers": {"n": n}},
        )
    print("published 5 messages")

    first = await ch.basic_get(queue=queue)
    assert first is not None
    print(f"basic.get  -> {first.body!r} headers={first.headers} ({first.message_count} left)")
    await first.ack()

    consumer = await ch.basic_consume(queue=queue)
    received = 0
    async for message in consumer:
        print(f"consumed   -> {message.body!r} delivery_tag={message.delivery_tag}")
        await message.ack()
        received += 1
        if received == 4:
            break
    await consumer.cancel()

    other = await client.open_channel()
    try:
        await other.queue_declare(queue="txamqp-next-demo-missing", passive=True)
    except NotFound as e:
        print(f"broker error on channel {other.id}: {type(e).__name__}: {e}")
    still = await ch.queue_declare(queue=queue, passive=True)
    print(f"channel {ch.id} still works: queue has {still.message_count} messages")

    await client.close()
    print("closed cleanly")


if __name__ == "__main__":
    broker = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/"
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, broker)))
