"""
Codec micro-benchmark: txamqp_next against pamqp 4.0.1 (the codec under
aiormq and aio-pika), in one run.

Three operations, the same message on both sides (a 100-byte body; the
properties content_type, delivery_mode, message_id and a 2-entry headers
table; channel 1):

  - publish encode: build basic.publish + its properties and encode the
    method, header and body frames into one byte string;
  - deliver decode: cut the frames of a basic.deliver + header + body out
    of one byte string and decode them into method and properties objects
    and the body;
  - table: encode then decode a 20-entry headers table.

Our side makes the calls the sans-IO connection makes for every publish
(L{Connection._encode}) and for every delivery (C{FrameReader.read_frames},
C{MethodSet.decode}, C{MethodSet.decode_header}).

Two more rows time the whole sans-IO connection, which pamqp has no
counterpart of, so they have no ratio: C{Connection.send_method} of the
publish plus C{data_to_send}, and C{Connection.receive_data} of the
delivery's bytes into a C{ContentReceived} event (state machines, content
assembly and size checks included).

Each operation is timed in many short batches (41 of 1000 calls by
default), ours and pamqp's interleaved, so a burst of load on the machine
hits both sides alike and the median sees past it; the median batch is
reported as ops/s and microseconds per op, with our ratio
to pamqp.  Batches are timed in the process's CPU time by default: on a
shared 2-core machine the elapsed time also counts the time spent waiting
for a CPU, which is noise (C{--clock wall} times elapsed time instead).
Timings there stay noisy: read the ratios.

    python -m bench.codec [--batch N] [--repeat N] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from txamqp_next import _frames
from txamqp_next._codec import decode_table, encode_table
from txamqp_next._connection import Connection
from txamqp_next._events import ContentReceived
from txamqp_next._methods import methods_for
from txamqp_next._params import Credentials
from txamqp_next.spec import load

BODY = bytes(range(100))
HEADERS = {"trace": "abc123", "attempt": 3}
TABLE = {f"key-{i:02d}": v for i, v in enumerate(["text", 12345, True, 2.5, -70000] * 4)}
CHANNEL = 1
FRAME_MAX = 131072

MS = methods_for(load())
Publish = MS.Basic.Publish
Deliver = MS.Basic.Deliver
Properties = MS.Basic.Properties


def ours_publish_encode() -> bytes:
    method = Publish(exchange="bench", routing_key="bench.key")
    props = Properties(
        content_type="application/octet-stream",
        delivery_mode=2,
        message_id="msg-000001",
        headers=HEADERS,
    )
    # the frames Connection._encode makes for a publish
    frames = [method.encode_frame(CHANNEL), *props.content_frames(CHANNEL, BODY, FRAME_MAX)]
    return b"".join(frames)


def ours_deliver_bytes() -> bytes:
    method = Deliver(
        consumer_tag="ctag-1", delivery_tag=42, exchange="bench", routing_key="bench.key"
    )
    props = Properties(
        content_type="application/octet-stream",
        delivery_mode=2,
        message_id="msg-000001",
        headers=HEADERS,
    )
    frames = [_frames.method_frame(CHANNEL, method.encode())]
    frames += _frames.content_frames(CHANNEL, props.encode_header(len(BODY)), BODY, FRAME_MAX)
    return b"".join(frames)


DELIVER_BYTES = ours_deliver_bytes()


# A connection reads everything through one FrameReader, so ours is made
# once; it is empty again after each delivery.
READER = _frames.FrameReader(FRAME_MAX)


def ours_deliver_decode() -> Any:
    READER.feed(DELIVER_BYTES)
    (_, channel, method_payload), (_, _, header), (_, _, body) = READER.read_frames()
    method = MS.decode(method_payload, channel)
    _, size, props = MS.decode_header(header, channel)
    assert len(body) == size
    return method, props, body


def opened_connection() -> Connection:
    """
    A sans-IO connection taken through the handshake, with channel 1 open
    and a consumer's delivery expected on it.
    """
    conn = Connection(credentials=Credentials())

    def frame(channel: int, name: str, **fields: Any) -> bytes:
        return MS[name](**fields).encode_frame(channel)

    conn.receive_data(
        frame(
            0,
            "connection.start",
            version_major=0,
            version_minor=9,
            server_properties={"product": "bench"},
            mechanisms=b"PLAIN",
            locales=b"en_US",
        )
    )
    conn.receive_data(frame(0, "connection.tune", channel_max=2047, frame_max=FRAME_MAX))
    conn.receive_data(frame(0, "connection.open-ok"))
    conn.open_channel(CHANNEL)
    conn.receive_data(frame(CHANNEL, "channel.open-ok"))
    conn.data_to_send()
    return conn


CONNECTION = opened_connection()


def connection_publish() -> bytes:
    method = Publish(exchange="bench", routing_key="bench.key")
    props = Properties(
        content_type="application/octet-stream",
        delivery_mode=2,
        message_id="msg-000001",
        headers=HEADERS,
    )
    CONNECTION.send_method(CHANNEL, method, props, BODY)
    return CONNECTION.data_to_send()


def connection_deliver() -> Any:
    (event,) = CONNECTION.receive_data(DELIVER_BYTES)
    return event


TABLE_BYTES = encode_table(TABLE)


def ours_table() -> Any:
    return decode_table(encode_table(TABLE), 0)


def pamqp_ops() -> dict[str, Callable[[], Any]]:
    from pamqp import body, commands, decode, encode, frame, header

    def publish_encode() -> bytes:
        method = commands.Basic.Publish(exchange="bench", routing_key="bench.key")
        props = commands.Basic.Properties(
            content_type="application/octet-stream",
            delivery_mode=2,
            message_id="msg-000001",
            headers=HEADERS,
        )
        return (
            frame.marshal(method, CHANNEL)
            + frame.marshal(header.ContentHeader(0, len(BODY), props), CHANNEL)
            + frame.marshal(body.ContentBody(BODY), CHANNEL)
        )

    def deliver_decode() -> Any:
        used, _, method = frame.unmarshal(DELIVER_BYTES)
        rest = DELIVER_BYTES[used:]
        used, _, content_header = frame.unmarshal(rest)
        rest = rest[used:]
        _, _, content_body = frame.unmarshal(rest)
        return method, content_header, content_body

    def table() -> Any:
        return decode.field_table(encode.field_table(TABLE))

    return {"publish encode": publish_encode, "deliver decode": deliver_decode, "table": table}


def check_agreement() -> None:
    """
    Each codec must read what the other wrote, so the comparison is of like
    with like.  (The bytes differ only in table details: pamqp sorts keys
    and packs small integers in one octet.)
    """
    ops = pamqp_ops()
    method, props, body = ours_deliver_decode()
    assert method.delivery_tag == 42 and body == BODY and props.headers == HEADERS
    their_method, their_header, their_body = ops["deliver decode"]()
    assert their_method.delivery_tag == 42 and their_body.value == BODY
    assert their_header.properties.headers == HEADERS
    reader = _frames.FrameReader(FRAME_MAX)
    reader.feed(ops["publish encode"]())
    frames = reader.read_frames()
    publish = MS.decode(frames[0][2])
    _, _, their_props = MS.decode_header(frames[1][2])
    assert publish.routing_key == "bench.key" and their_props.headers == HEADERS
    assert frames[2][2] == BODY
    ours = ours_publish_encode()
    assert connection_publish() == ours
    event = connection_deliver()
    assert isinstance(event, ContentReceived) and event.body == BODY
    assert event.properties.headers == HEADERS and event.method.delivery_tag == 42


#: The clock batches are timed with (see L{main}'s C{--clock}).
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def time_op(op: Callable[[], Any], batch: int) -> float:
    """
    Seconds per call over one batch of C{batch} calls.
    """
    start = clock()
    for _ in range(batch):
        op()
    return (clock() - start) / batch


def time_pair(
    mine: Callable[[], Any], other: Callable[[], Any], batch: int, repeat: int
) -> tuple[float, float]:
    """
    The median seconds per call of each operation over C{repeat} batches,
    the two sides' batches interleaved (ours, theirs, ours, ...) so that
    changes in the machine's load hit both alike.
    """
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(time_op(mine, batch))
        theirs.append(time_op(other, batch))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=41)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this process's CPU time (default; on a busy machine wall time also "
        "counts the time spent waiting for a CPU); wall: elapsed time",
    )
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    check_agreement()
    ours = {
        "publish encode": ours_publish_encode,
        "deliver decode": ours_deliver_decode,
        "table": ours_table,
    }
    theirs = pamqp_ops()
    version = metadata.version("pamqp")
    print(
        f"codec benchmark: txamqp_next vs pamqp {version}; median of {args.repeat} batches, "
        f"{args.clock} time"
    )
    print(
        f"{'operation':<16} {'ours us':>9} {'pamqp us':>9} {'ours ops/s':>11} "
        f"{'pamqp ops/s':>12} {'ratio':>6}"
    )
    for name in ours:
        mine, other = time_pair(ours[name], theirs[name], args.batch, args.repeat)
        print(
            f"{name:<16} {mine * 1e6:>9.2f} {other * 1e6:>9.2f} {1 / mine:>11,.0f} "
            f"{1 / other:>12,.0f} {other / mine:>5.1f}x"
        )
    print("whole sans-IO connection (no pamqp counterpart):")
    for name, op in (
        ("send_method", connection_publish),
        ("receive_data", connection_deliver),
    ):
        mine = statistics.median(time_op(op, args.batch) for _ in range(args.repeat))
        print(f"{name:<16} {mine * 1e6:>9.2f} {'':>9} {1 / mine:>11,.0f}")


if __name__ == "__main__":
    main()
