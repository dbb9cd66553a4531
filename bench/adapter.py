"""
Adapter micro-benchmark: the Twisted adapter's hot paths (L{AMQPConnection}
and L{Channel}) with the broker replaced by prebuilt frames and the socket by a
transport that only counts bytes, so that no I/O or broker noise enters.

  - publish: C{basic_publish} of a 100-byte body, no properties;
  - publish+props: the same with C{reply_to} and C{correlation_id} given as
    a mapping (the rpc workload's request);
  - confirm: publish in confirm mode, then the broker's C{basic.ack}s;
  - deliver+ack: C{basic.deliver} frames fed to C{dataReceived}, a consumer
    callback that acks each message;
  - rpc-serve: one request (C{reply_to} and C{correlation_id} set) per
    C{dataReceived}, as an rpc server receives them one round trip at a
    time; the callback publishes the reply.

Each reports CPU microseconds per message (process time, the median of
several batches; wall time on a shared machine is noisier).

    python -m bench.adapter [--count N] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock

from txamqp_next import _frames
from txamqp_next._methods import methods_for
from txamqp_next._params import Credentials
from txamqp_next.connection import AMQPConnection
from txamqp_next.spec import load

BODY = b"x" * 100


class NullTransport:
    """
    A transport that counts what is written and how many writes it took.
    """

    disconnecting = False

    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)

    def writeSequence(self, seq: list[bytes]) -> None:
        self.writes += 1
        for chunk in seq:
            self.bytes += len(chunk)

    def loseConnection(self) -> None:
        pass

    def getPeer(self) -> None:
        return None

    def getHost(self) -> None:
        return None


class Broker:
    """
    Builds the frames a broker sends.
    """

    def __init__(self) -> None:
        self.methods = methods_for(load())

    def method(self, channel: int, name: str, **fields: Any) -> bytes:
        return _frames.method_frame(channel, self.methods[name](**fields).encode())

    def content(
        self,
        channel: int,
        name: str,
        body: bytes,
        properties: dict[str, Any] | None = None,
        **fields: Any,
    ) -> bytes:
        method = self.methods[name](**fields)
        props = self.methods.properties[60](**(properties or {}))
        frames = [_frames.method_frame(channel, method.encode())]
        frames += _frames.content_frames(channel, props.encode_header(len(body)), body, 131072)
        return b"".join(frames)

    def deliveries(
        self, first: int, count: int, properties: Callable[[int], dict[str, Any]] | None = None
    ) -> list[bytes]:
        """
        The frames of C{count} deliveries to consumer C{ctag} on channel 1,
        tags from C{first}, each with C{properties(tag)}.
        """
        return [
            self.content(
                1,
                "basic.deliver",
                BODY,
                properties(tag) if properties else None,
                consumer_tag="ctag",
                delivery_tag=tag,
                exchange="",
                routing_key="bench",
            )
            for tag in range(first, first + count)
        ]


def open_client() -> tuple[AMQPConnection, Any, Broker, NullTransport]:
    broker = Broker()
    client = AMQPConnection(clock=Clock(), credentials=Credentials(), heartbeat=0)
    transport = NullTransport()
    client.makeConnection(transport)  # type: ignore[arg-type]
    client.dataReceived(
        broker.method(
            0,
            "connection.start",
            version_major=0,
            version_minor=9,
            server_properties={"product": "bench", "capabilities": {"publisher_confirms": True}},
            mechanisms=b"PLAIN",
            locales=b"en_US",
        )
    )
    client.dataReceived(
        broker.method(0, "connection.tune", channel_max=2047, frame_max=131072, heartbeat=0)
    )
    client.dataReceived(broker.method(0, "connection.open-ok"))
    channels: list[Any] = []
    client.open_channel().addCallback(channels.append)
    client.dataReceived(broker.method(1, "channel.open-ok"))
    assert channels, "the channel did not open"
    return client, channels[0], broker, transport


def bench_publish(count: int) -> Callable[[], float]:
    _, ch, _, _ = open_client()

    def run() -> float:
        publish = ch.basic_publish
        t0 = time.process_time()
        for _ in range(count):
            publish(exchange="", routing_key="bench", body=BODY)
        return time.process_time() - t0

    return run


def bench_publish_props(count: int) -> Callable[[], float]:
    _, ch, _, _ = open_client()

    def run() -> float:
        publish = ch.basic_publish
        t0 = time.process_time()
        for i in range(count):
            publish(
                exchange="",
                routing_key="bench",
                body=BODY,
                properties={"reply_to": "amq.gen-reply", "correlation_id": str(i)},
            )
        return time.process_time() - t0

    return run


def bench_confirm(count: int) -> Callable[[], float]:
    client, ch, broker, _ = open_client()
    ch.confirm_select()
    client.dataReceived(broker.method(1, "confirm.select-ok"))
    state = {"next": 1}

    def run() -> float:
        first = state["next"]
        acks = b"".join(
            broker.method(1, "basic.ack", delivery_tag=tag, multiple=False)
            for tag in range(first, first + count)
        )
        state["next"] = first + count
        settled = []
        publish = ch.basic_publish
        t0 = time.process_time()
        for _ in range(count):
            publish(exchange="", routing_key="bench", body=BODY).addCallback(settled.append)
        for start in range(0, len(acks), 65536):
            client.dataReceived(acks[start : start + 65536])
        elapsed = time.process_time() - t0
        assert len(settled) == count, len(settled)
        return elapsed

    return run


def bench_deliver_ack(count: int) -> Callable[[], float]:
    client, ch, broker, _ = open_client()
    received = []

    def on_message(message: Any) -> None:
        received.append(message)
        message.ack()

    ch.basic_consume(queue="bench", consumer_tag="ctag", callback=on_message)
    client.dataReceived(broker.method(1, "basic.consume-ok", consumer_tag="ctag"))
    state = {"next": 1}

    def run() -> float:
        first = state["next"]
        data = b"".join(broker.deliveries(first, count))
        state["next"] = first + count
        received.clear()
        t0 = time.process_time()
        for start in range(0, len(data), 65536):
            client.dataReceived(data[start : start + 65536])
        elapsed = time.process_time() - t0
        assert len(received) == count, len(received)
        return elapsed

    return run


def bench_rpc_serve(count: int) -> Callable[[], float]:
    client, ch, broker, transport = open_client()
    replies = []

    def on_request(message: Any) -> None:
        props = message.properties
        replies.append(
            ch.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                body=message.body,
                properties={"correlation_id": props.correlation_id},
            )
        )

    ch.basic_consume(queue="bench", consumer_tag="ctag", callback=on_request, no_ack=True)
    client.dataReceived(broker.method(1, "basic.consume-ok", consumer_tag="ctag"))
    state = {"next": 1}

    def run() -> float:
        first = state["next"]
        requests = broker.deliveries(
            first, count, lambda tag: {"reply_to": "amq.gen-reply", "correlation_id": str(tag)}
        )
        state["next"] = first + count
        replies.clear()
        writes = transport.writes
        received = client.dataReceived
        t0 = time.process_time()
        for request in requests:
            received(request)
        elapsed = time.process_time() - t0
        assert len(replies) == count, len(replies)
        assert transport.writes - writes == count, transport.writes - writes
        return elapsed

    return run


BENCHES = {
    "publish": bench_publish,
    "publish+props": bench_publish_props,
    "confirm": bench_confirm,
    "deliver+ack": bench_deliver_ack,
    "rpc-serve": bench_rpc_serve,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.adapter")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("names", nargs="*", default=list(BENCHES))
    args = parser.parse_args(argv)
    for name in args.names:
        run = BENCHES[name](args.count)
        times = [run() for _ in range(args.repeat)]
        us = statistics.median(times) / args.count * 1e6
        print(f"{name:14} {us:7.2f} us/msg")


if __name__ == "__main__":
    main()
