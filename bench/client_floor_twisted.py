"""
The floor on Twisted: the floor's pre-encoded frames and minimal parsing
(L{bench.client_floor}), driven by Twisted's reactor instead of blocking
sockets.  A second reference row, not a client library and not a peer: the
least a client running in Twisted's reactor could spend on the C{rpc}
workload, where each round trip wakes the reactor twice.  The difference
between the two floors is what the reactor itself costs, which no Twisted
client can avoid; the difference between this floor and txamqp_next is the
client's own.

Connections are opened, queues declared and consumers started with the
floor's blocking code before the meter starts; the sockets are then handed
to the reactor.  Writes go straight to the socket (a round trip's frames
are small, and a socket with nothing queued takes them whole), as
txamqp_next's do.  Every reply's correlation id and body is checked.

    python -m bench.client_floor_twisted --workload rpc --count 5000
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol

from bench import client_floor as floor
from bench import common
from bench.common import BenchError, Meter, check_body

CLIENT = "floor_twisted"


class FrameProtocol(protocol.Protocol):
    """
    Reads whole messages (deliver, header, body frames) from a socket the
    reactor watches and hands each to C{on_message(header, body)}.
    """

    def __init__(self, conn: floor.Connection, on_message: Callable[[bytes, bytes], None]) -> None:
        self.conn = conn
        self.on_message = on_message
        self.header = b""
        self.remaining = 0
        self.parts: list[bytes] = []
        self.failed: defer.Deferred[None] = defer.Deferred()

    def send(self, data: bytes) -> None:
        """
        Send C{data} on the socket at once; what it does not take goes to
        the transport.
        """
        sent = self.conn.sock.send(data)
        if sent < len(data):
            assert self.transport is not None
            self.transport.write(data[sent:])

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        conn.buf = conn.buf[conn.pos :] + data
        conn.pos = 0
        while True:
            got = conn.next_frame()
            if got is None:
                return
            kind, payload = got
            if kind == floor.METHOD_FRAME:
                if payload[:4] != floor.DELIVER:
                    raise floor.unexpected(payload)
                self.parts = []
            elif kind == floor.HEADER_FRAME:
                self.header = payload
                self.remaining = floor.CONTENT_HEADER.unpack_from(payload)[2]
            elif kind == floor.BODY_FRAME:
                self.parts.append(payload)
                self.remaining -= len(payload)
                if not self.remaining:
                    self.on_message(self.header, b"".join(self.parts))

    def connectionLost(self, reason: Any = None) -> None:
        if not self.failed.called:
            self.failed.errback(BenchError(f"the connection was lost: {reason}"))


def adopt(reactor: Any, conn: floor.Connection, proto: FrameProtocol) -> None:
    """
    Hand C{conn}'s socket to the reactor, read by C{proto}.
    """
    conn.sock.setblocking(False)
    reactor.adoptStreamConnection(
        conn.sock.fileno(), socket.AF_INET, protocol.Factory.forProtocol(lambda: proto)
    )


async def rpc(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "rpc").encode()
    server = floor.Connection(args.url)
    server.queue_declare(queue, floor.EXCLUSIVE)
    server.consume(queue, floor.NO_ACK)
    client = floor.Connection(args.url)
    reply_queue = client.queue_declare(b"", floor.EXCLUSIVE)[0]
    client.consume(reply_queue, floor.NO_ACK)
    count, size, fm = args.count, args.size, client.frame_max
    flags = floor.CORRELATION_ID | floor.REPLY_TO
    requests = [
        floor.publish_frames(
            queue, b, fm, flags, floor.shortstr(b"%d" % i) + floor.shortstr(reply_queue)
        )
        for i, b in enumerate(common.bodies(count, size))
    ]
    latencies: list[float] = []
    perf_counter = time.perf_counter
    done: defer.Deferred[None] = defer.Deferred()
    state = {"next": 0, "t0": 0.0}

    def on_request(header: bytes, body: bytes) -> None:
        # the server's turn: echo the request to its reply_to
        corr, reply_to = floor.properties(header)
        server_proto.send(
            floor.publish_frames(reply_to, body, fm, floor.CORRELATION_ID, floor.shortstr(corr))
        )

    def send_next() -> None:
        state["t0"] = perf_counter()
        client_proto.send(requests[int(state["next"])])

    def on_reply(header: bytes, body: bytes) -> None:
        i = int(state["next"])
        latencies.append(perf_counter() - state["t0"])
        corr = floor.properties(header)[0]
        try:
            if corr != b"%d" % i:
                raise BenchError(f"reply {corr!r} to request {i}")
            check_body(i, size, body)
        except BenchError as e:
            done.errback(e)
            return
        state["next"] = i + 1
        if i + 1 == count:
            done.callback(None)
        else:
            send_next()

    server_proto = FrameProtocol(server, on_request)
    client_proto = FrameProtocol(client, on_reply)
    adopt(reactor, server, server_proto)
    adopt(reactor, client, client_proto)
    meter = Meter()
    meter.start()
    send_next()
    # the last reply, or the first error or lost connection
    await defer.DeferredList(
        [done, server_proto.failed, client_proto.failed],
        fireOnOneCallback=True,
        fireOnOneErrback=True,
        consumeErrors=True,
    )
    meter.stop()
    return common.result(args, meter, **common.rpc_extra(latencies))


WORKLOADS = {"rpc": rpc}


def main(argv: list[str] | None = None) -> None:
    args = common.parse_args(CLIENT, argv)
    workload = common.pick(args, WORKLOADS, "is a reference for rpc only")
    common.run_twisted(args, lambda reactor: workload(reactor, args))


if __name__ == "__main__":
    main()
