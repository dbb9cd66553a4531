"""
The floor: a deliberately minimal AMQP 0-9-1 client on the standard library
alone (a blocking C{socket} and C{struct}), for the benchmark's reference
row.  It is not a client library and not a peer: it knows only the methods
the workloads use, runs everything on channel 1, and builds every frame it
can before the meter starts (a publish run is one pre-encoded buffer handed
to C{sendall}; the acks of a consume run are slices of another), so it
spends about as little client CPU per message as any client could.  What it
measures is what the broker allows on this machine.

It is still held to the same rules as the real clients: the same workloads,
counts and sizes, fresh queues from L{common.queue_name}, the same helper
process to fill and check them, and every delivered body checked with
L{common.check_body}.

Its C{thrift} workload is the AMQP work of txamqp_next's Thrift calls (the
same exchanges, flags, properties and acknowledgements, see L{thrift}) with
Thrift messages encoded before the meter starts: what the broker allows a
Thrift call over AMQP, whatever the client.

    python -m bench.client_floor --workload publish --count 100000 --size 100
"""

from __future__ import annotations

import argparse
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from bench import common
from bench.common import BenchError, Meter, check_body

CLIENT = "floor"
#: the frame_max we ask for, so that a 1 MiB body spans several body frames
FRAME_MAX = 131072
RECV_SIZE = 1 << 16

FRAME_HEAD = struct.Struct(">BHI")
FRAME_END = b"\xce"
METHOD_FRAME, HEADER_FRAME, BODY_FRAME, HEARTBEAT_FRAME = 1, 2, 3, 8
EMPTY_TABLE = b"\x00\x00\x00\x00"
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
TAG_BITS = struct.Struct(">QB")
#: class id, weight, body size, property flags
CONTENT_HEADER = struct.Struct(">HHQH")
#: channel.close and connection.close: 200, no text, no failing method
CLOSE_ARGUMENTS = b"\x00\xc8\x00" + b"\x00" * 4


def _id(class_id: int, method_id: int) -> bytes:
    return U16.pack(class_id) + U16.pack(method_id)


START, START_OK, TUNE, TUNE_OK = _id(10, 10), _id(10, 11), _id(10, 30), _id(10, 31)
OPEN, OPEN_OK, CLOSE, CLOSE_OK = _id(10, 40), _id(10, 41), _id(10, 50), _id(10, 51)
CHANNEL_OPEN, CHANNEL_OPEN_OK = _id(20, 10), _id(20, 11)
CHANNEL_CLOSE, CHANNEL_CLOSE_OK = _id(20, 40), _id(20, 41)
DECLARE, DECLARE_OK, DELETE, DELETE_OK = _id(50, 10), _id(50, 11), _id(50, 40), _id(50, 41)
BIND, BIND_OK = _id(50, 20), _id(50, 21)
QOS, QOS_OK, CONSUME, CONSUME_OK = _id(60, 10), _id(60, 11), _id(60, 20), _id(60, 21)
CANCEL, CANCEL_OK, PUBLISH, DELIVER = _id(60, 30), _id(60, 31), _id(60, 40), _id(60, 60)
ACK, NACK = _id(60, 80), _id(60, 120)
SELECT, SELECT_OK = _id(85, 10), _id(85, 11)

#: queue.declare bits
PASSIVE, EXCLUSIVE = 1, 4
#: basic.consume's no-ack bit
NO_ACK = 2
#: the basic property flags this client sends and understands
CORRELATION_ID, REPLY_TO = 1 << 10, 1 << 9
HEADERS = 1 << 13
#: basic.publish's mandatory bit
MANDATORY = 1


def shortstr(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def longstr(value: bytes) -> bytes:
    return U32.pack(len(value)) + value


def frame(kind: int, payload: bytes, channel: int = 1) -> bytes:
    return FRAME_HEAD.pack(kind, channel, len(payload)) + payload + FRAME_END


def method(method_id: bytes, arguments: bytes = b"", channel: int = 1) -> bytes:
    return frame(METHOD_FRAME, method_id + arguments, channel)


def publish_frames(
    routing_key: bytes,
    body: bytes,
    frame_max: int,
    flags: int = 0,
    properties: bytes = b"",
    exchange: bytes = b"",
    bits: int = 0,
) -> bytes:
    """
    The C{basic.publish} of C{body} (to the default exchange unless
    C{exchange} is given; C{bits} are the method's, L{MANDATORY}): method,
    content header and body frames, the body split to fit C{frame_max}.
    """
    step = frame_max - 8
    parts = [
        method(PUBLISH, b"\x00\x00" + shortstr(exchange) + shortstr(routing_key) + bytes([bits])),
        frame(HEADER_FRAME, CONTENT_HEADER.pack(60, 0, len(body), flags) + properties),
    ]
    parts += [frame(BODY_FRAME, body[i : i + step]) for i in range(0, len(body), step)]
    return b"".join(parts)


def declare_frame(queue: bytes, bits: int) -> bytes:
    return method(DECLARE, b"\x00\x00" + shortstr(queue) + bytes([bits]) + EMPTY_TABLE)


def delete_frame(queue: bytes) -> bytes:
    return method(DELETE, b"\x00\x00" + shortstr(queue) + b"\x00")


def unexpected(payload: bytes) -> BenchError:
    """
    The error for a method frame the workload did not expect, with the
    broker's reason if it closed the channel or connection.
    """
    method_id = payload[:4]
    if method_id in (CLOSE, CHANNEL_CLOSE):
        code = U16.unpack_from(payload, 4)[0]
        text = payload[7 : 7 + payload[6]].decode(errors="replace")
        what = "channel" if method_id == CHANNEL_CLOSE else "connection"
        return BenchError(f"the broker closed the {what}: {code} {text}")
    if method_id == NACK:
        return BenchError(f"the broker nacked publish {TAG_BITS.unpack_from(payload, 4)[0]}")
    class_id, method_no = U16.unpack_from(payload)[0], U16.unpack_from(payload, 2)[0]
    return BenchError(f"unexpected method {class_id}.{method_no}")


class Connection:
    """
    One connection with channel 1 open, read through one buffer: C{buf}
    from C{pos} on holds what was received and not yet parsed.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(START)
        user = unquote(parts.username or "guest").encode()
        password = unquote(parts.password or "guest").encode()
        self.send(
            method(
                START_OK,
                EMPTY_TABLE
                + shortstr(b"PLAIN")
                + longstr(b"\x00" + user + b"\x00" + password)
                + shortstr(b"en_US"),
                channel=0,
            )
        )
        channel_max, frame_max = struct.unpack_from(">HI", self.expect(TUNE))
        self.frame_max = min(frame_max or FRAME_MAX, FRAME_MAX)
        self.send(method(TUNE_OK, struct.pack(">HIH", channel_max, self.frame_max, 0), 0))
        vhost = unquote(parts.path[1:]) if parts.path[1:] else "/"
        self.call(method(OPEN, shortstr(vhost.encode()) + shortstr(b"") + b"\x00", 0), OPEN_OK)
        self.call(method(CHANNEL_OPEN, shortstr(b"")), CHANNEL_OPEN_OK)

    def send(self, data: bytes | memoryview) -> None:
        self.sock.sendall(data)

    def fill(self) -> None:
        """
        Receive more (blocking), keeping what is not yet parsed.
        """
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise BenchError("the broker closed the connection")
        self.buf = self.buf[self.pos :] + data
        self.pos = 0

    def next_frame(self) -> tuple[int, bytes] | None:
        """
        The next whole frame's type and payload, if one is buffered.
        """
        buf, pos = self.buf, self.pos
        if len(buf) - pos < 7:
            return None
        kind, _channel, size = FRAME_HEAD.unpack_from(buf, pos)
        end = pos + 7 + size
        if len(buf) <= end:
            return None
        if buf[end] != 0xCE:
            raise BenchError(f"bad frame end {buf[end]:#x}")
        self.pos = end + 1
        return kind, buf[pos + 7 : end]

    def read_frame(self) -> tuple[int, bytes]:
        while True:
            got = self.next_frame()
            if got is None:
                self.fill()
            elif got[0] != HEARTBEAT_FRAME:
                return got

    def expect(self, method_id: bytes) -> bytes:
        """
        Read the next method, which must be C{method_id}; return its
        arguments.
        """
        kind, payload = self.read_frame()
        if kind != METHOD_FRAME:
            raise BenchError(f"frame type {kind} where a method was due")
        if payload[:4] != method_id:
            raise unexpected(payload)
        return payload[4:]

    def call(self, data: bytes, reply: bytes) -> bytes:
        self.send(data)
        return self.expect(reply)

    def queue_declare(self, queue: bytes, bits: int = 0) -> tuple[bytes, int]:
        """
        @return: the queue's name and how many messages it holds.
        """
        ok = self.call(declare_frame(queue, bits), DECLARE_OK)
        end = 1 + ok[0]
        return ok[1:end], U32.unpack_from(ok, end)[0]

    def queue_delete(self, queue: bytes) -> int:
        """
        @return: how many messages the deleted queue held.
        """
        return int(U32.unpack(self.call(delete_frame(queue), DELETE_OK))[0])

    def consume(self, queue: bytes, bits: int = 0) -> bytes:
        """
        Start a consumer; return its tag.
        """
        arguments = b"\x00\x00" + shortstr(queue) + shortstr(b"") + bytes([bits]) + EMPTY_TABLE
        ok = self.call(method(CONSUME, arguments), CONSUME_OK)
        return ok[1 : 1 + ok[0]]

    def bind(self, queue: bytes, exchange: bytes, routing_key: bytes) -> None:
        arguments = shortstr(queue) + shortstr(exchange) + shortstr(routing_key)
        self.call(method(BIND, b"\x00\x00" + arguments + b"\x00" + EMPTY_TABLE), BIND_OK)

    def cancel(self, tag: bytes) -> None:
        self.call(method(CANCEL, shortstr(tag) + b"\x00"), CANCEL_OK)

    def read_message(self) -> tuple[bytes, bytes]:
        """
        The next delivery's content header payload and body.
        """
        self.expect(DELIVER)
        kind, header = self.read_frame()
        if kind != HEADER_FRAME:
            raise BenchError(f"frame type {kind} where a content header was due")
        remaining = CONTENT_HEADER.unpack_from(header)[2]
        parts = []
        while remaining:
            kind, part = self.read_frame()
            if kind != BODY_FRAME:
                raise BenchError(f"frame type {kind} inside a body")
            parts.append(part)
            remaining -= len(part)
        return header, b"".join(parts)

    def close(self) -> None:
        self.call(method(CHANNEL_CLOSE, CLOSE_ARGUMENTS), CHANNEL_CLOSE_OK)
        self.call(method(CLOSE, CLOSE_ARGUMENTS, 0), CLOSE_OK)
        self.sock.close()


def wait_held(conn: Connection, queue: bytes, count: int) -> None:
    """
    Poll with passive C{queue.declare} until the broker holds C{count}.
    """
    while True:
        held = conn.queue_declare(queue, PASSIVE)[1]
        if held == count:
            return
        if held > count:
            raise BenchError(f"{held} messages in {queue.decode()}, not {count}")
        time.sleep(0.005)


def receive(conn: Connection, count: int, size: int, acks: bytes) -> None:
    """
    Read C{count} deliveries straight from the receive buffer, check each
    body in order and ack each one: after every C{recv}, the slice of the
    pre-encoded C{acks} (L{ack_frames}) for the messages it completed.
    """
    ack_size, ack_view = len(acks) // count, memoryview(acks)
    unpack_head, unpack_tag = FRAME_HEAD.unpack_from, struct.Struct(">Q").unpack_from
    unpack_size = CONTENT_HEADER.unpack_from
    data, pos, n = conn.buf, conn.pos, len(conn.buf)
    done, acked, remaining = 0, 0, 0
    parts: list[bytes] = []
    while done < count:
        while n - pos >= 7:
            kind, _channel, length = unpack_head(data, pos)
            start, end = pos + 7, pos + 7 + length
            if end >= n:
                break
            if data[end] != 0xCE:
                raise BenchError(f"bad frame end {data[end]:#x}")
            pos = end + 1
            if kind == BODY_FRAME:
                if length == remaining and not parts:
                    check_body(done, size, data[start:end])
                    done += 1
                else:
                    parts.append(data[start:end])
                    remaining -= length
                    if remaining <= 0:  # a wrong length fails check_body
                        check_body(done, size, b"".join(parts))
                        parts = []
                        done += 1
            elif kind == HEADER_FRAME:
                remaining = unpack_size(data, start)[2]
            elif kind == METHOD_FRAME and data[start : start + 4] == DELIVER:
                tag = unpack_tag(data, start + 5 + data[start + 4])[0]
                if tag != done + 1:
                    raise BenchError(f"delivery tag {tag} for message {done}")
            elif kind != HEARTBEAT_FRAME:
                raise unexpected(data[start:end])
        if done > acked:
            conn.send(ack_view[acked * ack_size : done * ack_size])
            acked = done
        if done < count:
            got = conn.sock.recv(RECV_SIZE)
            if not got:
                raise BenchError("the broker closed the connection")
            data, pos = data[pos:] + got, 0
            n = len(data)
    conn.buf, conn.pos = data, pos


def ack_frames(count: int) -> bytes:
    """
    One C{basic.ack} for each delivery tag from 1 to C{count}.
    """
    return b"".join(method(ACK, TAG_BITS.pack(tag, 0)) for tag in range(1, count + 1))


def publish(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "publish").encode()
    conn = Connection(args.url)
    conn.queue_declare(queue)
    fm = conn.frame_max
    frames = b"".join(publish_frames(queue, b, fm) for b in common.bodies(args.count, args.size))
    meter = Meter()
    meter.start()
    conn.send(frames)
    wait_held(conn, queue, args.count)
    meter.stop()
    conn.close()
    common.drain_and_check(args.url, queue.decode(), args.count, args.size)
    return common.result(args, meter)


def confirm(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "confirm").encode()
    conn = Connection(args.url)
    conn.queue_declare(queue)
    conn.call(method(SELECT, b"\x00"), SELECT_OK)
    count, fm = args.count, conn.frame_max
    frames = memoryview(
        b"".join(publish_frames(queue, b, fm) for b in common.bodies(count, args.size))
    )
    per = len(frames) // count  # every message's frames have the same length
    meter = Meter()
    meter.start()
    sent = min(common.CONFIRM_WINDOW, count)
    conn.send(frames[: sent * per])
    # every tag up to low is confirmed, and the single acks above it
    low, singles = 0, set[int]()
    while True:
        while (got := conn.next_frame()) is not None:
            kind, payload = got
            if kind == HEARTBEAT_FRAME:
                continue
            if kind != METHOD_FRAME or payload[:4] != ACK:
                raise unexpected(payload)
            tag, bits = TAG_BITS.unpack_from(payload, 4)
            if bits & 1:
                low = max(low, tag)
                singles = {t for t in singles if t > low}
            else:
                singles.add(tag)
            while low + 1 in singles:
                low += 1
                singles.remove(low)
        confirmed = low + len(singles)
        more = min(count, confirmed + common.CONFIRM_WINDOW)
        if more > sent:
            conn.send(frames[sent * per : more * per])
            sent = more
        if confirmed >= count:
            break
        conn.fill()
    meter.stop()
    conn.close()
    common.drain_and_check(args.url, queue.decode(), count, args.size)
    return common.result(args, meter)


def consume(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "consume")
    common.prefill(args.url, queue, args.count, args.size)
    conn = Connection(args.url)
    conn.call(method(QOS, struct.pack(">IHB", 0, common.PREFETCH, 0)), QOS_OK)
    acks = ack_frames(args.count)
    meter = Meter()
    meter.start()
    tag = conn.consume(queue.encode())
    receive(conn, args.count, args.size, acks)
    meter.stop()
    conn.cancel(tag)
    left = conn.queue_delete(queue.encode())
    if left != 0:
        raise BenchError(f"{left} messages left in {queue}")
    conn.close()
    return common.result(args, meter)


def properties(header: bytes) -> tuple[bytes, bytes]:
    """
    The C{correlation_id} and C{reply_to} of a content header that has no
    other property.
    """
    flags = CONTENT_HEADER.unpack_from(header)[3]
    if flags & ~(CORRELATION_ID | REPLY_TO):
        raise BenchError(f"unexpected property flags {flags:#x}")
    pos, values = 14, []
    for flag in (CORRELATION_ID, REPLY_TO):
        value = b""
        if flags & flag:
            value = header[pos + 1 : pos + 1 + header[pos]]
            pos += 1 + len(value)
        values.append(value)
    return values[0], values[1]


def rpc(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "rpc").encode()
    server = Connection(args.url)
    server.queue_declare(queue, EXCLUSIVE)
    server.consume(queue, NO_ACK)
    client = Connection(args.url)
    reply_queue = client.queue_declare(b"", EXCLUSIVE)[0]
    client.consume(reply_queue, NO_ACK)
    size, fm = args.size, client.frame_max
    requests = [
        publish_frames(
            queue, b, fm, CORRELATION_ID | REPLY_TO, shortstr(b"%d" % i) + shortstr(reply_queue)
        )
        for i, b in enumerate(common.bodies(args.count, size))
    ]
    latencies: list[float] = []
    perf_counter = time.perf_counter
    meter = Meter()
    meter.start()
    for i, request in enumerate(requests):
        t0 = perf_counter()
        client.send(request)
        # the server's turn: echo the request to its reply_to
        header, body = server.read_message()
        corr, reply_to = properties(header)
        server.send(publish_frames(reply_to, body, fm, CORRELATION_ID, shortstr(corr)))
        header, body = client.read_message()
        latencies.append(perf_counter() - t0)
        corr = properties(header)[0]
        if corr != b"%d" % i:
            raise BenchError(f"reply {corr!r} to request {i}")
        check_body(i, size, body)
    meter.stop()
    client.close()
    server.close()
    return common.result(args, meter, **common.rpc_extra(latencies))


def large(args: argparse.Namespace) -> dict[str, Any]:
    queue = common.queue_name(CLIENT, "large").encode()
    conn = Connection(args.url)
    conn.queue_declare(queue, EXCLUSIVE)
    conn.call(method(QOS, struct.pack(">IHB", 0, common.LARGE_PREFETCH, 0)), QOS_OK)
    count, size, fm = args.count, args.size, conn.frame_max
    frames = b"".join(publish_frames(queue, b, fm) for b in common.bodies(count, size))
    acks = ack_frames(count)
    meter = Meter()
    meter.start()
    conn.send(frames)
    tag = conn.consume(queue)
    receive(conn, count, size, acks)
    meter.stop()
    conn.cancel(tag)
    conn.close()
    return common.result(args, meter)


def declare(args: argparse.Namespace) -> dict[str, Any]:
    prefix = common.queue_name(CLIENT, "declare")
    names = [f"{prefix}-{i}".encode() for i in range(args.count)]
    declares = b"".join(declare_frame(name, EXCLUSIVE) for name in names)
    deletes = b"".join(delete_frame(name) for name in names)
    conn = Connection(args.url)
    meter = Meter()
    meter.start()
    # every request in flight at once, then every reply
    conn.send(declares)
    for name in names:
        ok = conn.expect(DECLARE_OK)
        if ok[1 : 1 + ok[0]] != name:
            raise BenchError(f"declared {ok[1 : 1 + ok[0]]!r}, not {name!r}")
    conn.send(deletes)
    for _ in names:
        conn.expect(DELETE_OK)
    meter.stop()
    conn.close()
    return common.result(args, meter)


#: where the floor's Thrift calls and replies go: txamqp_next's servers
#: reply through amq.direct; a direct exchange of one's own (txamqp_next's
#: C{thrift}) routes the calls the same way
THRIFT_EXCHANGE = b"amq.direct"
THRIFT_CLIENT_NAME = b"floor"
#: seconds without a frame before a concurrent run gives up
THRIFT_STALL = 60.0


def thrift_messages(count: int, size: int, first_seqid: int) -> tuple[list[bytes], list[bytes]]:
    """
    The Thrift binary messages of C{count} C{echo} calls and of their
    replies, encoded with Thrift's own protocol and the workload's
    generated code, as a txamqp_next client and server would send them.
    """
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol
    from thrift.Thrift import TMessageType
    from thrift.transport.TTransport import TMemoryBuffer

    from bench import thriftcode

    echo = thriftcode.echo_module()
    calls: list[bytes] = []
    replies: list[bytes] = []
    for i, payload in enumerate(common.bodies(count, size)):
        for kind, value, out in (
            (TMessageType.CALL, echo.echo_args(data=payload), calls),
            (TMessageType.REPLY, echo.echo_result(success=payload), replies),
        ):
            buffer = TMemoryBuffer()
            protocol = TBinaryProtocol(buffer)
            protocol.writeMessageBegin("echo", kind, first_seqid + i)
            value.write(protocol)
            protocol.writeMessageEnd()
            out.append(buffer.getvalue())
    return calls, replies


def reply_to_of_call(header: bytes) -> bytes:
    """
    The C{reply_to} of a Thrift call's content header: it has C{headers}
    (C{thriftClientName}) and C{reply_to}, nothing else.
    """
    flags = CONTENT_HEADER.unpack_from(header)[3]
    if flags != HEADERS | REPLY_TO:
        raise BenchError(f"unexpected property flags {flags:#x} on a call")
    pos = 14 + 4 + U32.unpack_from(header, 14)[0]
    return header[pos + 1 : pos + 1 + header[pos]]


class Delivery(NamedTuple):
    tag: int
    header: bytes
    body: bytes


class Confirm(NamedTuple):
    """
    The broker's ack of publish C{tag} (and of every one before it, when
    C{multiple}).
    """

    tag: int
    multiple: bool


class Messages:
    """
    Deliveries and confirms read from a connection's buffer as they
    complete, across C{recv}s.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._tag = 0
        self._header = b""
        self._remaining = -1
        self._parts: list[bytes] = []

    def read(self) -> list[Delivery | Confirm]:
        """
        Every delivery and confirm completed by the bytes buffered, in
        order.
        """
        done: list[Delivery | Confirm] = []
        while (got := self.conn.next_frame()) is not None:
            kind, payload = got
            if kind == METHOD_FRAME:
                if payload[:4] == DELIVER:
                    self._tag = struct.unpack_from(">Q", payload, 5 + payload[4])[0]
                    self._remaining = -1
                elif payload[:4] == ACK:
                    tag, bits = TAG_BITS.unpack_from(payload, 4)
                    done.append(Confirm(tag, bool(bits & 1)))
                else:
                    raise unexpected(payload)
            elif kind == HEADER_FRAME:
                self._header = payload
                self._remaining = CONTENT_HEADER.unpack_from(payload)[2]
                self._parts = []
            elif kind == BODY_FRAME:
                self._parts.append(payload)
                self._remaining -= len(payload)
            elif kind != HEARTBEAT_FRAME:
                raise BenchError(f"frame type {kind}")
            if kind != METHOD_FRAME and self._remaining == 0:
                done.append(Delivery(self._tag, self._header, b"".join(self._parts)))
                self._remaining = -1
        return done


def thrift(args: argparse.Namespace) -> dict[str, Any]:
    """
    The AMQP work of txamqp_next's Thrift calls, as a client and a server
    in one process would do it, with the least client CPU: each call is
    published to a direct exchange with C{mandatory}, its C{reply_to} and
    a C{thriftClientName} header; the server consumes with acknowledgements
    (prefetch L{common.PREFETCH}, as the workload's servers), publishes the
    reply (C{mandatory}) from a channel in confirm mode, and acknowledges
    the call once the broker confirmed its reply; the client consumes its
    reply queue without acknowledgements.  Every call and reply is checked
    byte for byte against the Thrift message it should be.

    The sequential calls time a call from the client's publish to its
    reply; the server's confirm and ack come after that, before the next
    call (in a real server they overlap the client's reading of the reply).
    The concurrent calls are all published at once, then both connections
    are served as their frames arrive.
    """
    service = common.queue_name(CLIENT, "thrift").encode()
    count, size = args.count, args.size
    server = Connection(args.url)
    server.queue_declare(service, EXCLUSIVE)
    server.bind(service, THRIFT_EXCHANGE, service)
    server.call(method(QOS, struct.pack(">IHB", 0, common.PREFETCH, 0)), QOS_OK)
    server.call(method(SELECT, b"\x00"), SELECT_OK)
    server.consume(service)
    client = Connection(args.url)
    reply_queue = client.queue_declare(b"", EXCLUSIVE)[0]
    client.bind(reply_queue, THRIFT_EXCHANGE, reply_queue)
    client.consume(reply_queue, NO_ACK)
    fm = client.frame_max
    table = shortstr(b"thriftClientName") + b"S" + longstr(THRIFT_CLIENT_NAME)
    properties = U32.pack(len(table)) + table + shortstr(reply_queue)

    def call_frames(calls: list[bytes]) -> list[bytes]:
        return [
            publish_frames(
                service, c, fm, HEADERS | REPLY_TO, properties, THRIFT_EXCHANGE, MANDATORY
            )
            for c in calls
        ]

    def reply_frames(reply_to: bytes, reply: bytes) -> bytes:
        return publish_frames(reply_to, reply, fm, 0, b"", THRIFT_EXCHANGE, MANDATORY)

    def ack(tag: int, multiple: bool) -> bytes:
        return method(ACK, TAG_BITS.pack(tag, int(multiple)))

    calls, replies = thrift_messages(count, size, 1)
    requests = call_frames(calls)
    server_in, client_in = Messages(server), Messages(client)
    latencies: list[float] = []
    perf_counter = time.perf_counter
    sequential = Meter()
    sequential.start()
    for i in range(count):
        t0 = perf_counter()
        client.send(requests[i])
        while not (got := server_in.read()):
            server.fill()
        [call] = got
        if not isinstance(call, Delivery) or call.tag != i + 1 or call.body != calls[i]:
            raise BenchError(f"call {i} came as {call!r}")
        server.send(reply_frames(reply_to_of_call(call.header), replies[i]))
        while not (got := client_in.read()):
            client.fill()
        latencies.append(perf_counter() - t0)
        [reply] = got
        if not isinstance(reply, Delivery):
            raise BenchError(f"{reply!r} where reply {i} was due")
        check_body(i, size, reply.body[-size - 1 : -1])
        if reply.body != replies[i]:
            raise BenchError(f"reply {i} is not the echo of its call")
        while not (got := server_in.read()):
            server.fill()
        [confirm] = got
        if not isinstance(confirm, Confirm) or confirm.tag != i + 1:
            raise BenchError(f"{confirm!r} where the confirm of {i + 1} was due")
        server.send(ack(call.tag, False))
    sequential.stop()

    calls, replies = thrift_messages(count, size, count + 1)
    requests = call_frames(calls)
    first_tag = count + 1
    concurrent = Meter()
    concurrent.start()
    client.send(b"".join(requests))
    answered = acked = replied = 0
    while replied < count or acked < count:
        readable, _, _ = select.select([server.sock, client.sock], [], [], THRIFT_STALL)
        if not readable:
            raise BenchError(f"no frame in {THRIFT_STALL:g} s")
        if server.sock in readable:
            server.fill()
            out = []
            for item in server_in.read():
                if isinstance(item, Delivery):
                    i = item.tag - first_tag
                    if i != answered or item.body != calls[i]:
                        raise BenchError(f"delivery {item.tag} is not call {answered}")
                    out.append(reply_frames(reply_to_of_call(item.header), replies[i]))
                    answered += 1
                else:
                    # this phase's publish n confirmed: call n (delivery
                    # first_tag - 1 + n) is acked, with every call before it
                    # when the confirm was
                    up_to = item.tag - count
                    if not item.multiple:
                        out.append(ack(first_tag - 1 + up_to, False))
                        acked += 1
                    elif up_to > acked:
                        out.append(ack(first_tag - 1 + up_to, True))
                        acked = up_to
            if out:
                server.send(b"".join(out))
        if client.sock in readable:
            client.fill()
            for item in client_in.read():
                if not isinstance(item, Delivery):
                    raise BenchError(f"{item!r} on the client's connection")
                check_body(replied, size, item.body[-size - 1 : -1])
                if item.body != replies[replied]:
                    raise BenchError(f"reply {replied} is not the echo of its call")
                replied += 1
    concurrent.stop()
    client.close()
    server.close()
    return common.thrift_result(args, sequential, concurrent, latencies)


WORKLOADS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
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
    workload = common.pick(args, WORKLOADS, "has no such workload")
    common.run_blocking(args, lambda: workload(args))


if __name__ == "__main__":
    main()
