# -*- test-case-name: tests.test_golden -*-
"""
Golden bytes from a real RabbitMQ session.

The frames below were captured from RabbitMQ 3.10.8 (Erlang/OTP 25.2.3) on
2026-11-22 by a throwaway script that spoke AMQP 0-9-1 over a plain socket,
building the client's frames by hand with C{struct} (not with txamqp_next).
The session: protocol header, start-ok (PLAIN guest/guest), tune-ok, open
C{/}, channel.open, queue.declare of an auto-delete queue, two
basic.publish with properties and a 100-byte body, basic.get,
basic.ack, basic.consume and the delivery, basic.ack, channel.close,
connection.close.

The tests decode each broker frame with L{FrameReader} and the method set of
our default spec and check the fields, re-encode the same values with our
encoder and expect the very same bytes, and finally replay the session
through the sans-IO L{Connection}.

The broker's C{connection.start} is kept whole; only a few of its server
properties are asserted, since they describe the broker's build and host.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txamqp_next import _frames
from txamqp_next._connection import Connection, ConnectionState, Credentials
from txamqp_next._events import (
    ChannelClosed,
    ConnectionClosed,
    ConnectionOpened,
    ContentReceived,
    MethodReceived,
    ReplyReceived,
)
from txamqp_next._methods import Method, MethodSet, Properties, methods_for
from txamqp_next.spec import load

QUEUE = "txamqp-next-golden-5fdd0eee"
BODY = bytes(range(100))
CONSUMER_TAG = "golden-consumer"
HEADERS = {"x-golden": "yes", "n": 42}

# -- sent by the broker -------------------------------------------------------

# connection.start (channel 0)
START = bytes.fromhex(
    "010000000001f0000a000a0009000001cb0c6361706162696c697469657346000000c7127075626c69736865"
    "725f636f6e6669726d7374011a65786368616e67655f65786368616e67655f62696e64696e677374010a6261"
    "7369632e6e61636b740116636f6e73756d65725f63616e63656c5f6e6f74696679740112636f6e6e65637469"
    "6f6e2e626c6f636b6564740113636f6e73756d65725f7072696f72697469657374011c61757468656e746963"
    "6174696f6e5f6661696c7572655f636c6f73657401107065725f636f6e73756d65725f716f7374010f646972"
    "6563745f7265706c795f746f74010c636c75737465725f6e616d65530000000972616262697440766d09636f"
    "707972696768745300000037436f707972696768742028632920323030372d3230323220564d776172652c20"
    "496e632e206f722069747320616666696c69617465732e0b696e666f726d6174696f6e53000000394c696365"
    "6e73656420756e64657220746865204d504c20322e302e20576562736974653a2068747470733a2f2f726162"
    "6269746d712e636f6d08706c6174666f726d530000001145726c616e672f4f54502032352e322e330770726f"
    "6475637453000000085261626269744d510776657273696f6e5300000006332e31302e380000000e504c4149"
    "4e20414d51504c41494e00000005656e5f5553ce"
)
# connection.tune: channel_max 2047, frame_max 131072, heartbeat 60
TUNE = bytes.fromhex("0100000000000c000a001e07ff00020000003cce")
# connection.open-ok
OPEN_OK = bytes.fromhex("01000000000005000a002900ce")
# channel.open-ok (channel 1, as all that follows but the last)
CHANNEL_OPEN_OK = bytes.fromhex("010001000000080014000b00000000ce")
# queue.declare-ok
DECLARE_OK = bytes.fromhex(
    "010001000000280032000b1b7478616d71702d6e6578742d676f6c64656e2d35666464306565650000000000"
    "000000ce"
)
# basic.get-ok, then GET_OK_HEADER and BODY_FRAME
GET_OK = bytes.fromhex(
    "0100010000002e003c0047000000000000000100001b7478616d71702d6e6578742d676f6c64656e2d356664"
    "643065656500000001ce"
)
# its content header (message_id msg-1)
GET_OK_HEADER = bytes.fromhex(
    "0200010000003c003c00000000000000000064b0800a746578742f706c61696e0000001808782d676f6c6465"
    "6e5300000003796573016e490000002a02056d73672d31ce"
)
# basic.consume-ok
CONSUME_OK = bytes.fromhex("01000100000014003c00150f676f6c64656e2d636f6e73756d6572ce")
# basic.deliver, then DELIVER_HEADER and BODY_FRAME
DELIVER = bytes.fromhex(
    "0100010000003a003c003c0f676f6c64656e2d636f6e73756d6572000000000000000200001b7478616d7170"
    "2d6e6578742d676f6c64656e2d3566646430656565ce"
)
# its content header (message_id msg-2)
DELIVER_HEADER = bytes.fromhex(
    "0200010000003c003c00000000000000000064b0800a746578742f706c61696e0000001808782d676f6c6465"
    "6e5300000003796573016e490000002a02056d73672d32ce"
)
# the body frame of both messages, each way (BODY on channel 1)
BODY_FRAME = bytes.fromhex(
    "03000100000064000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324"
    "25262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f50"
    "5152535455565758595a5b5c5d5e5f60616263ce"
)
# channel.close-ok
CHANNEL_CLOSE_OK = bytes.fromhex("0100010000000400140029ce")
# connection.close-ok (channel 0)
CLOSE_OK = bytes.fromhex("01000000000004000a0033ce")

# -- sent by the client --------------------------------------------------------

# the protocol header
PROTOCOL_HEADER = bytes.fromhex("414d515000000901")
# connection.start-ok: client_properties {product: golden-capture}, PLAIN guest/guest
START_OK = bytes.fromhex(
    "0100000000003f000a000b0000001b0770726f64756374530000000e676f6c64656e2d636170747572650550"
    "4c41494e0000000c00677565737400677565737405656e5f5553ce"
)
# connection.tune-ok: channel_max 2047, frame_max 131072, heartbeat 0
TUNE_OK = bytes.fromhex("0100000000000c000a001f07ff000200000000ce")
# connection.open of /
OPEN = bytes.fromhex("01000000000008000a0028012f0000ce")
# channel.open (channel 1, as all that follows but the last)
CHANNEL_OPEN = bytes.fromhex("010001000000050014000a00ce")
# queue.declare, auto_delete
QUEUE_DECLARE = bytes.fromhex(
    "010001000000270032000a00001b7478616d71702d6e6578742d676f6c64656e2d35666464306565650800000000ce"
)
# basic.publish to the default exchange, then a header (as the broker's
# GET_OK_HEADER, then DELIVER_HEADER) and BODY_FRAME; sent twice
PUBLISH = bytes.fromhex(
    "01000100000024003c00280000001b7478616d71702d6e6578742d676f6c64656e2d356664643065656500ce"
)
# basic.get
GET = bytes.fromhex(
    "01000100000023003c004600001b7478616d71702d6e6578742d676f6c64656e2d356664643065656500ce"
)
# basic.ack of delivery tag 1
ACK_1 = bytes.fromhex("0100010000000d003c0050000000000000000100ce")
# basic.consume with consumer tag golden-consumer
CONSUME = bytes.fromhex(
    "01000100000037003c001400001b7478616d71702d6e6578742d676f6c64656e2d35666464306565650f676f"
    "6c64656e2d636f6e73756d65720000000000ce"
)
# basic.ack of delivery tag 2
ACK_2 = bytes.fromhex("0100010000000d003c0050000000000000000200ce")
# channel.close 200 bye
CHANNEL_CLOSE = bytes.fromhex("0100010000000e0014002800c80362796500000000ce")
# connection.close 200 bye (channel 0)
CLOSE = bytes.fromhex("0100000000000e000a003200c80362796500000000ce")


def parse(data: bytes) -> tuple[int, int, bytes]:
    """
    The one frame C{data} holds, as C{(type, channel, payload)}; fails if
    it holds less or more.
    """
    reader = _frames.FrameReader(131072)
    reader.feed(data)
    frame = reader.next_frame()
    if not isinstance(frame, tuple) or reader.buffered:
        raise AssertionError(f"not exactly one frame: {data!r}")
    return frame


class GoldenTestCase(SynchronousTestCase):
    """
    Helpers to decode golden frames and compare our encoding with them.
    """

    def setUp(self) -> None:
        self.ms: MethodSet = methods_for(load())

    def decode_method(self, data: bytes, channel: int) -> Method:
        """
        Decode a golden method frame, checking its type and channel.
        """
        frame_type, got_channel, payload = parse(data)
        self.assertEqual((frame_type, got_channel), (_frames.FRAME_METHOD, channel))
        return self.ms.decode(payload)

    def decode_header(self, data: bytes) -> tuple[int, int, Properties]:
        frame_type, channel, payload = parse(data)
        self.assertEqual((frame_type, channel), (_frames.FRAME_HEADER, 1))
        return self.ms.decode_header(payload)

    def assertEncodes(self, method: Method, channel: int, golden: bytes) -> None:
        """
        Our encoding of C{method} on C{channel} is exactly C{golden}.
        """
        self.assertEqual(_frames.method_frame(channel, method.encode()).hex(), golden.hex())

    def assertFields(self, method: Method, name: str, **fields: Any) -> None:
        self.assertEqual(method.NAME, name)
        self.assertEqual(dict(method.items()), fields)

    def properties(self, message_id: str) -> Properties:
        """
        The properties both messages were published with.
        """
        return self.ms.Basic.Properties(
            content_type="text/plain", headers=HEADERS, delivery_mode=2, message_id=message_id
        )


class BrokerFramesTests(GoldenTestCase):
    """
    What RabbitMQ sent decodes to the expected fields, and our encoder
    writes the same fields as the same bytes.
    """

    def test_connection_start(self) -> None:
        """
        C{connection.start}: version 0-9, the mechanisms and locales as
        bytes, and a server-properties table with nested capabilities.  Its
        tables hold only strings and booleans, whose encoding is fixed, so
        re-encoding the decoded values (in the broker's key order) gives the
        broker's bytes.
        """
        start = self.decode_method(START, 0)
        self.assertEqual(start.NAME, "connection.start")
        self.assertEqual((start.version_major, start.version_minor), (0, 9))
        self.assertEqual(start.mechanisms, b"PLAIN AMQPLAIN")
        self.assertEqual(start.locales, b"en_US")
        props = start.server_properties
        self.assertEqual((props["product"], props["version"]), ("RabbitMQ", "3.10.8"))
        capabilities = props["capabilities"]
        for name in ("publisher_confirms", "basic.nack", "consumer_cancel_notify"):
            self.assertIs(capabilities[name], True, name)
        self.assertEncodes(self.ms.Connection.Start(**dict(start.items())), 0, START)

    def test_handshake(self) -> None:
        """
        C{tune} and C{open-ok}.
        """
        tune = self.decode_method(TUNE, 0)
        self.assertFields(tune, "connection.tune", channel_max=2047, frame_max=131072, heartbeat=60)
        self.assertEncodes(
            self.ms.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60), 0, TUNE
        )
        self.assertFields(self.decode_method(OPEN_OK, 0), "connection.open-ok")
        self.assertEncodes(self.ms.Connection.OpenOk(), 0, OPEN_OK)

    def test_channel_and_queue(self) -> None:
        """
        C{channel.open-ok} (a reserved long string) and
        C{queue.declare-ok}.
        """
        self.assertFields(self.decode_method(CHANNEL_OPEN_OK, 1), "channel.open-ok")
        self.assertEncodes(self.ms.Channel.OpenOk(), 1, CHANNEL_OPEN_OK)
        declare_ok = self.decode_method(DECLARE_OK, 1)
        self.assertFields(
            declare_ok, "queue.declare-ok", queue=QUEUE, message_count=0, consumer_count=0
        )
        self.assertEncodes(self.ms.Queue.DeclareOk(queue=QUEUE), 1, DECLARE_OK)

    def test_get_ok(self) -> None:
        """
        C{basic.get-ok} with its content header and body.
        """
        get_ok = self.decode_method(GET_OK, 1)
        self.assertFields(
            get_ok,
            "basic.get-ok",
            delivery_tag=1,
            redelivered=False,
            exchange="",
            routing_key=QUEUE,
            message_count=1,
        )
        self.assertEncodes(
            self.ms.Basic.GetOk(delivery_tag=1, routing_key=QUEUE, message_count=1), 1, GET_OK
        )
        self.assertEqual(self.decode_header(GET_OK_HEADER), (60, 100, self.properties("msg-1")))
        self.assertEqual(parse(BODY_FRAME), (_frames.FRAME_BODY, 1, BODY))

    def test_consume_and_deliver(self) -> None:
        """
        C{basic.consume-ok} and C{basic.deliver} with its content.
        """
        consume_ok = self.decode_method(CONSUME_OK, 1)
        self.assertFields(consume_ok, "basic.consume-ok", consumer_tag=CONSUMER_TAG)
        self.assertEncodes(self.ms.Basic.ConsumeOk(consumer_tag=CONSUMER_TAG), 1, CONSUME_OK)
        deliver = self.decode_method(DELIVER, 1)
        self.assertFields(
            deliver,
            "basic.deliver",
            consumer_tag=CONSUMER_TAG,
            delivery_tag=2,
            redelivered=False,
            exchange="",
            routing_key=QUEUE,
        )
        self.assertEncodes(
            self.ms.Basic.Deliver(consumer_tag=CONSUMER_TAG, delivery_tag=2, routing_key=QUEUE),
            1,
            DELIVER,
        )
        self.assertEqual(self.decode_header(DELIVER_HEADER), (60, 100, self.properties("msg-2")))

    def test_content_headers(self) -> None:
        """
        Our encoding of the properties gives the broker's header frames:
        property flags, then content type, headers (a long string and a
        32-bit integer), delivery mode and message id.
        """
        for message_id, golden in (("msg-1", GET_OK_HEADER), ("msg-2", DELIVER_HEADER)):
            header = self.properties(message_id).encode_header(len(BODY))
            [frame] = _frames.content_frames(1, header, b"", 0)
            self.assertEqual(frame.hex(), golden.hex(), message_id)
            _, _, props = self.decode_header(golden)
            self.assertIs(type(props.headers["n"]), int)

    def test_close_oks(self) -> None:
        """
        C{channel.close-ok} and C{connection.close-ok}.
        """
        self.assertFields(self.decode_method(CHANNEL_CLOSE_OK, 1), "channel.close-ok")
        self.assertEncodes(self.ms.Channel.CloseOk(), 1, CHANNEL_CLOSE_OK)
        self.assertFields(self.decode_method(CLOSE_OK, 0), "connection.close-ok")
        self.assertEncodes(self.ms.Connection.CloseOk(), 0, CLOSE_OK)


class ClientFramesTests(GoldenTestCase):
    """
    Our encoder writes the frames the broker accepted from the hand-built
    client, byte for byte; they also decode to the same fields.
    """

    def client_methods(self) -> list[tuple[bytes, int, Method]]:
        ms = self.ms
        return [
            (
                START_OK,
                0,
                ms.Connection.StartOk(
                    client_properties={"product": "golden-capture"},
                    mechanism="PLAIN",
                    response=b"\0guest\0guest",
                    locale="en_US",
                ),
            ),
            (TUNE_OK, 0, ms.Connection.TuneOk(channel_max=2047, frame_max=131072)),
            (OPEN, 0, ms.Connection.Open(virtual_host="/")),
            (CHANNEL_OPEN, 1, ms.Channel.Open()),
            (QUEUE_DECLARE, 1, ms.Queue.Declare(queue=QUEUE, auto_delete=True)),
            (PUBLISH, 1, ms.Basic.Publish(routing_key=QUEUE)),
            (GET, 1, ms.Basic.Get(queue=QUEUE)),
            (ACK_1, 1, ms.Basic.Ack(delivery_tag=1)),
            (CONSUME, 1, ms.Basic.Consume(queue=QUEUE, consumer_tag=CONSUMER_TAG)),
            (ACK_2, 1, ms.Basic.Ack(delivery_tag=2)),
            (CHANNEL_CLOSE, 1, ms.Channel.Close(reply_code=200, reply_text="bye")),
            (CLOSE, 0, ms.Connection.Close(reply_code=200, reply_text="bye")),
        ]

    def test_methods(self) -> None:
        """
        Each client method frame is our encoding of the method, and decodes
        back to it.
        """
        for golden, channel, method in self.client_methods():
            self.assertEncodes(method, channel, golden)
            self.assertEqual(self.decode_method(golden, channel), method)

    def test_publish_content(self) -> None:
        """
        A publish's header and body frames are what C{content_frames} builds.
        """
        header = self.properties("msg-1").encode_header(len(BODY))
        self.assertEqual(
            b"".join(_frames.content_frames(1, header, BODY, 131072)).hex(),
            (GET_OK_HEADER + BODY_FRAME).hex(),
        )

    def test_protocol_header(self) -> None:
        """
        The protocol header is the one our spec says 0-9-1 sends.
        """
        self.assertEqual(load().protocol_header, PROTOCOL_HEADER)


class ReplayTests(GoldenTestCase):
    """
    The session replayed through the sans-IO L{Connection}: fed the broker's
    frames, it sends the client's bytes (where they do not depend on our own
    client properties and tuning) and reports the expected events.
    """

    def test_session(self) -> None:
        """
        Handshake, declare, publish, get, consume, acks and both closes.
        The broker's start and tune are reported as methods on channel 0;
        the answers to our calls (get-ok with its content too) as replies,
        but for our channel close, answered by the channel's closing; the
        delivery as content.
        """
        conn = Connection(credentials=Credentials("guest", "guest"), channel_max=2047)
        ms = self.ms

        self.assertEqual(conn.data_to_send(), PROTOCOL_HEADER)
        self.assertEqual(
            conn.receive_data(START), [MethodReceived(0, self.decode_method(START, 0))]
        )
        start_ok = self.decode_method(conn.data_to_send(), 0)
        self.assertEqual((start_ok.mechanism, start_ok.response), ("PLAIN", b"\0guest\0guest"))
        self.assertEqual(conn.receive_data(TUNE), [MethodReceived(0, self.decode_method(TUNE, 0))])
        # our tune-ok differs from the captured one only in accepting the
        # broker's heartbeat; open is the same
        sent = conn.data_to_send()
        self.assertEqual(
            self.decode_method(sent[: -len(OPEN)], 0),
            ms.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=60),
        )
        self.assertEqual(sent[-len(OPEN) :].hex(), OPEN.hex())
        [opened] = conn.receive_data(OPEN_OK)
        assert isinstance(opened, ConnectionOpened)
        self.assertEqual(
            (opened.channel_max, opened.frame_max, opened.heartbeat), (2047, 131072, 60)
        )
        self.assertEqual(opened.server_properties["product"], "RabbitMQ")

        self.assertEqual(conn.open_channel(), 1)
        self.assertEqual(conn.data_to_send().hex(), CHANNEL_OPEN.hex())
        self.assertEqual(
            conn.receive_data(CHANNEL_OPEN_OK), [ReplyReceived(1, ms.Channel.OpenOk())]
        )

        conn.send_method(1, ms.Queue.Declare(queue=QUEUE, auto_delete=True))
        self.assertEqual(conn.data_to_send().hex(), QUEUE_DECLARE.hex())
        self.assertEqual(
            conn.receive_data(DECLARE_OK), [ReplyReceived(1, ms.Queue.DeclareOk(queue=QUEUE))]
        )

        for message_id, header in (("msg-1", GET_OK_HEADER), ("msg-2", DELIVER_HEADER)):
            conn.publish(1, BODY, routing_key=QUEUE, properties=self.properties(message_id))
            self.assertEqual(conn.data_to_send().hex(), (PUBLISH + header + BODY_FRAME).hex())

        conn.send_method(1, ms.Basic.Get(queue=QUEUE))
        self.assertEqual(conn.data_to_send().hex(), GET.hex())
        get_ok = ms.Basic.GetOk(delivery_tag=1, routing_key=QUEUE, message_count=1)
        self.assertEqual(
            conn.receive_data(GET_OK + GET_OK_HEADER + BODY_FRAME),
            [ReplyReceived(1, get_ok, self.properties("msg-1"), BODY)],
        )
        conn.send_method(1, ms.Basic.Ack(delivery_tag=1))
        self.assertEqual(conn.data_to_send().hex(), ACK_1.hex())

        conn.send_method(1, ms.Basic.Consume(queue=QUEUE, consumer_tag=CONSUMER_TAG))
        self.assertEqual(conn.data_to_send().hex(), CONSUME.hex())
        deliver = ms.Basic.Deliver(consumer_tag=CONSUMER_TAG, delivery_tag=2, routing_key=QUEUE)
        self.assertEqual(
            conn.receive_data(CONSUME_OK + DELIVER + DELIVER_HEADER + BODY_FRAME),
            [
                ReplyReceived(1, ms.Basic.ConsumeOk(consumer_tag=CONSUMER_TAG)),
                ContentReceived(1, deliver, self.properties("msg-2"), BODY),
            ],
        )
        conn.send_method(1, ms.Basic.Ack(delivery_tag=2))
        self.assertEqual(conn.data_to_send().hex(), ACK_2.hex())

        conn.send_method(1, ms.Channel.Close(reply_code=200, reply_text="bye"))
        self.assertEqual(conn.data_to_send().hex(), CHANNEL_CLOSE.hex())
        self.assertEqual(
            conn.receive_data(CHANNEL_CLOSE_OK),
            [ChannelClosed(1, None)],
        )

        conn.close(200, "bye")
        self.assertEqual(conn.data_to_send().hex(), CLOSE.hex())
        self.assertEqual(conn.receive_data(CLOSE_OK), [ConnectionClosed(None)])
        self.assertIs(conn.state, ConnectionState.CLOSED)
        self.assertEqual(conn.data_to_send(), b"")
