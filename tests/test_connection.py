# -*- test-case-name: tests.test_connection -*-
"""
Tests for the sans-IO connection core, L{txamqp_next._connection}, driven
by a fake broker made of frames.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import FrameFactory, SentParser, open_channel, open_connection
from tests.test_methods import reference_spec
from txamqp_next import _frames, errors
from txamqp_next._codec import decode_table
from txamqp_next._connection import (
    _CHANNEL_TRANSITIONS,
    _CONNECTION_TRANSITIONS,
    ChannelState,
    Connection,
    ConnectionState,
    Credentials,
    _Channel,
    capabilities,
    negotiate,
)
from txamqp_next._events import (
    ChannelClosed,
    ConnectionClosed,
    ConnectionOpened,
    ContentReceived,
    MethodReceived,
    ReplyReceived,
)
from txamqp_next._params import ConnectionParameters
from txamqp_next.errors import LocalProtocolError, RemoteProtocolError
from txamqp_next.spec import load

#: every capability the client may advertise (with RabbitMQ's 0-9-1)
ALL_CAPABILITIES = frozenset(
    {
        "publisher_confirms",
        "consumer_cancel_notify",
        "exchange_exchange_bindings",
        "basic.nack",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    }
)


class HandshakeTests(SynchronousTestCase):
    """
    The handshake: header, start/start-ok, tune/tune-ok, open/open-ok.
    """

    def setUp(self) -> None:
        self.conn = Connection(
            credentials=Credentials("user", "s3cret"), vhost="/v", connection_name="app"
        )
        self.factory = FrameFactory()
        self.parser = SentParser()

    def test_protocol_header_first(self) -> None:
        """
        The first bytes out are the 0-9-1 protocol header, and nothing else.
        """
        self.assertEqual(self.conn.data_to_send(), b"AMQP\x00\x00\x09\x01")
        self.assertEqual(self.conn.data_to_send(), b"")

    def test_start_ok(self) -> None:
        """
        C{start} is reported (as a L{MethodReceived} on channel 0) and
        answered with C{start-ok}: PLAIN credentials, our product, platform,
        connection name and capabilities.
        """
        self.parser.feed(self.conn.data_to_send())
        [event] = self.conn.receive_data(self.factory.start())
        assert isinstance(event, MethodReceived)
        self.assertEqual((event.channel, event.method.NAME), (0, "connection.start"))
        [start_ok] = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(start_ok.NAME, "connection.start-ok")
        self.assertEqual(start_ok.mechanism, "PLAIN")
        self.assertEqual(start_ok.response, b"\0user\0s3cret")
        props = start_ok.client_properties
        self.assertEqual(props["product"], "txamqp_next")
        self.assertEqual(props["connection_name"], "app")
        self.assertIn("platform", props)
        for capability in ALL_CAPABILITIES:
            self.assertIs(props["capabilities"][capability], True, capability)
        self.assertNotIn("s3cret", repr(start_ok))
        self.assertEqual(self.conn.state, ConnectionState.AWAIT_TUNE)

    def test_tune_and_open(self) -> None:
        """
        C{tune} is answered with C{tune-ok} carrying the negotiated values,
        then C{open} for the vhost, and reported as a L{MethodReceived} on
        channel 0; C{open-ok} yields L{ConnectionOpened}.
        """
        self.parser.feed(self.conn.data_to_send())
        self.conn.receive_data(self.factory.start())
        [tune] = self.conn.receive_data(
            self.factory.tune(channel_max=100, frame_max=65536, heartbeat=30)
        )
        assert isinstance(tune, MethodReceived)
        self.assertEqual((tune.channel, tune.method.NAME), (0, "connection.tune"))
        self.assertEqual(tune.method.channel_max, 100)
        sent = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(
            [m.NAME for m in sent], ["connection.start-ok", "connection.tune-ok", "connection.open"]
        )
        tune_ok, open_ = sent[1], sent[2]
        self.assertEqual(
            (tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat), (100, 65536, 30)
        )
        self.assertEqual(open_.virtual_host, "/v")
        [event] = self.conn.receive_data(self.factory.open_ok())
        self.assertIsInstance(event, ConnectionOpened)
        assert isinstance(event, ConnectionOpened)
        self.assertEqual((event.channel_max, event.frame_max, event.heartbeat), (100, 65536, 30))
        self.assertEqual(event.server_properties["product"], "RabbitMQ")
        self.assertEqual(self.conn.state, ConnectionState.OPEN)

    def test_amqplain_and_external(self) -> None:
        """
        AMQPLAIN sends a LOGIN/PASSWORD table without its length prefix;
        EXTERNAL sends an empty response.
        """
        response = Credentials("u", "p", "amqplain").response()
        table, _ = decode_table(len(response).to_bytes(4, "big") + response, 0)
        self.assertEqual(table, {"LOGIN": "u", "PASSWORD": "p"})
        self.assertEqual(Credentials(mechanism="EXTERNAL").response(), b"")
        self.assertRaises(ValueError, Credentials, mechanism="CRAM-MD5")
        self.assertNotIn("p'", repr(Credentials("u", "p")))

    def test_mechanism_not_offered(self) -> None:
        """
        A broker that does not offer our mechanism ends the connection with
        L{errors.AuthenticationError}, after the start is reported.
        """
        self.conn.data_to_send()
        [start, event] = self.conn.receive_data(self.factory.start(mechanisms=b"EXTERNAL"))
        assert isinstance(start, MethodReceived)
        self.assertEqual(start.method.NAME, "connection.start")
        assert isinstance(event, ConnectionClosed)
        self.assertIsInstance(event.error, errors.AuthenticationError)
        self.assertIn("PLAIN", str(event.error))
        self.assertEqual(self.conn.state, ConnectionState.CLOSED)

    def test_refused_credentials(self) -> None:
        """
        A C{connection.close} answering C{start-ok} is an
        L{errors.AuthenticationError}, and is acknowledged with close-ok.
        """
        self.parser.feed(self.conn.data_to_send())
        self.conn.receive_data(self.factory.start())
        self.parser.feed(self.conn.data_to_send())
        [event] = self.conn.receive_data(
            self.factory.method(
                0,
                "connection.close",
                reply_code=403,
                reply_text="ACCESS_REFUSED - Login was refused",
            )
        )
        assert isinstance(event, ConnectionClosed)
        self.assertIsInstance(event.error, errors.AuthenticationError)
        self.assertEqual(event.error.reply_code if event.error else 0, 403)
        [close_ok] = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(close_ok.NAME, "connection.close-ok")

    def test_missing_vhost(self) -> None:
        """
        A 530 answering C{open} is L{errors.NotAllowed}.
        """
        self.conn.receive_data(self.factory.start())
        self.conn.receive_data(self.factory.tune())
        [event] = self.conn.receive_data(
            self.factory.method(
                0, "connection.close", reply_code=530, reply_text="NOT_ALLOWED - vhost /v not found"
            )
        )
        assert isinstance(event, ConnectionClosed)
        self.assertIsInstance(event.error, errors.NotAllowed)

    def test_version_mismatch(self) -> None:
        """
        A broker answering with another protocol header (even split in
        pieces) gives a clear L{RemoteProtocolError}.
        """
        self.assertEqual(self.conn.receive_data(b"AM"), [])
        exc = self.assertRaises(RemoteProtocolError, self.conn.receive_data, b"QP\x00\x00\x09\x00")
        self.assertIn("does not speak AMQP 0-9-1", str(exc))
        self.assertEqual(self.conn.state, ConnectionState.CLOSED)

    def test_secure_answered(self) -> None:
        """
        C{connection.secure} is answered with C{secure-ok} and our response.
        """
        self.parser.feed(self.conn.data_to_send())
        self.conn.receive_data(self.factory.start())
        self.conn.receive_data(self.factory.method(0, "connection.secure", challenge=b"x"))
        sent = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(sent[-1].NAME, "connection.secure-ok")
        self.assertEqual(sent[-1].response, b"\0user\0s3cret")


class NegotiateTests(SynchronousTestCase):
    """
    L{negotiate} follows RabbitMQ's documented rules.
    """

    def test_rules(self) -> None:
        """
        The lower of two non-zero values; 0 on one side means the other's;
        None accepts the server's.
        """
        self.assertEqual(negotiate(10, 60), 10)
        self.assertEqual(negotiate(600, 60), 60)
        self.assertEqual(negotiate(0, 60), 60)
        self.assertEqual(negotiate(30, 0), 30)
        self.assertEqual(negotiate(0, 0), 0)
        self.assertEqual(negotiate(None, 0), 0)
        self.assertEqual(negotiate(None, 60), 60)


class ChannelTests(SynchronousTestCase):
    """
    Channels: opening, serialised synchronous calls, closing both ways.
    """

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection()
        self.ms = self.conn.methods

    def sent(self) -> list[str]:
        return [m.NAME for m in self.parser.methods_sent(self.conn.data_to_send())]

    def test_open(self) -> None:
        """
        C{open_channel} picks the lowest free id and sends C{channel.open};
        C{open-ok} opens it and is reported as the reply to the open.
        """
        self.assertEqual(self.conn.open_channel(), 1)
        self.assertEqual(self.conn.open_channel(), 2)
        self.assertEqual(self.sent(), ["channel.open", "channel.open"])
        self.assertEqual(self.conn.channel_state(1), ChannelState.OPENING)
        [event] = self.conn.receive_data(self.factory.method(1, "channel.open-ok"))
        assert isinstance(event, ReplyReceived)
        self.assertEqual(event.channel, 1)
        self.assertEqual(event.method.NAME, "channel.open-ok")
        self.assertEqual(self.conn.channel_state(1), ChannelState.OPEN)
        exc = self.assertRaises(LocalProtocolError, self.conn.open_channel, 1)
        self.assertIn("already", str(exc))

    def test_synchronous_calls_serialised(self) -> None:
        """
        While a synchronous call waits for its reply, later calls on that
        channel (synchronous or not) wait behind it, in order.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        self.conn.send_method(ch, self.ms.Queue.Declare(queue="a"))
        self.conn.send_method(ch, self.ms.Queue.Declare(queue="b"))
        self.conn.publish(ch, b"x", routing_key="b")
        self.assertEqual(self.sent(), ["queue.declare"])
        self.conn.receive_data(self.factory.method(ch, "queue.declare-ok", queue="a"))
        self.assertEqual(self.sent(), ["queue.declare"])
        self.conn.receive_data(self.factory.method(ch, "queue.declare-ok", queue="b"))
        self.assertEqual(self.sent(), ["basic.publish"])

    def test_asynchronous_calls_not_held(self) -> None:
        """
        With nothing queued, asynchronous calls go out while a synchronous
        call is outstanding.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        self.conn.send_method(ch, self.ms.Queue.Declare(queue="a"))
        self.conn.publish(ch, b"x")
        self.assertEqual(self.sent(), ["queue.declare", "basic.publish"])

    def test_no_wait_expects_no_reply(self) -> None:
        """
        C{no_wait=True} makes a synchronous method expect no reply, so the
        next call goes out at once.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        self.conn.send_method(ch, self.ms.Queue.Declare(queue="a", no_wait=True))
        self.conn.send_method(ch, self.ms.Queue.Declare(queue="b"))
        self.assertEqual(self.sent(), ["queue.declare", "queue.declare"])

    def test_broker_closes_channel(self) -> None:
        """
        A C{channel.close} from the broker closes only that channel with the
        typed error, is acknowledged, and frees the id; other channels go on.
        """
        one = open_channel(self.conn, self.factory, self.parser)
        two = open_channel(self.conn, self.factory, self.parser)
        self.conn.send_method(one, self.ms.Queue.Declare(queue="missing", passive=True))
        self.sent()
        [event] = self.conn.receive_data(
            self.factory.method(
                one,
                "channel.close",
                reply_code=404,
                reply_text="NOT_FOUND - no queue",
                class_id=50,
                method_id=10,
            )
        )
        assert isinstance(event, ChannelClosed)
        self.assertIsInstance(event.error, errors.NotFound)
        assert event.error is not None
        self.assertEqual((event.error.class_id, event.error.method_id), (50, 10))
        self.assertEqual(self.sent(), ["channel.close-ok"])
        self.assertEqual(self.conn.channel_state(one), ChannelState.CLOSED)
        self.assertEqual(self.conn.channel_state(two), ChannelState.OPEN)
        exc = self.assertRaises(LocalProtocolError, self.conn.publish, one, b"x")
        self.assertIn("not open", str(exc))
        self.assertEqual(exc.args, (503, exc.reply_text, one))
        self.assertEqual((exc.reply_code, exc.channel), (503, one))
        self.assertEqual(open_channel(self.conn, self.factory, self.parser), one)

    def test_client_close_skips_queue(self) -> None:
        """
        Closing a channel sends C{channel.close} at once, even behind an
        outstanding call; queued calls are dropped; replies that arrive while
        closing are discarded; C{close-ok} closes the channel, answered by
        a L{ChannelClosed} without error (not by a reply event).
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        self.conn.send_method(ch, self.ms.Queue.Declare(queue="a"))
        self.conn.send_method(ch, self.ms.Queue.Declare(queue="b"))
        self.conn.send_method(ch, self.ms.Channel.Close(reply_code=200))
        self.assertEqual(self.sent(), ["queue.declare", "channel.close"])
        self.assertEqual(
            self.conn.receive_data(self.factory.method(ch, "queue.declare-ok", queue="a")), []
        )
        events = self.conn.receive_data(self.factory.method(ch, "channel.close-ok"))
        self.assertEqual(events, [ChannelClosed(ch, None)])
        self.assertEqual(self.conn.channel_state(ch), ChannelState.CLOSED)

    def test_simultaneous_close(self) -> None:
        """
        A broker close crossing ours is acknowledged and closes the channel.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        self.conn.send_method(ch, self.ms.Channel.Close())
        self.sent()
        [event] = self.conn.receive_data(self.factory.method(ch, "channel.close", reply_code=406))
        assert isinstance(event, ChannelClosed)
        self.assertIsInstance(event.error, errors.PreconditionFailed)
        self.assertEqual(self.sent(), ["channel.close-ok"])

    def test_simultaneous_close_then_close_ok(self) -> None:
        """
        When a broker close crosses ours, the broker also answers our close
        with C{close-ok} after its own close (the spec says a Close received
        after sending Close is answered with Close-Ok; RabbitMQ does so).
        That late C{close-ok} is accepted quietly: the connection and the
        other channels go on, and the id can be used again.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        other = open_channel(self.conn, self.factory, self.parser)
        self.conn.send_method(ch, self.ms.Channel.Close())
        self.sent()
        [closed] = self.conn.receive_data(self.factory.method(ch, "channel.close", reply_code=406))
        self.assertIsInstance(closed, ChannelClosed)
        self.assertEqual(self.sent(), ["channel.close-ok"])
        events = self.conn.receive_data(self.factory.method(ch, "channel.close-ok"))
        self.assertEqual(
            [e for e in events if isinstance(e, (ChannelClosed, ConnectionClosed))], []
        )
        self.assertEqual(self.sent(), [])
        self.assertEqual(self.conn.state, ConnectionState.OPEN)
        self.assertEqual(self.conn.channel_state(other), ChannelState.OPEN)
        self.assertEqual(open_channel(self.conn, self.factory, self.parser), ch)

    def test_flow_answered(self) -> None:
        """
        C{channel.flow} from the broker is answered with C{flow-ok} and
        reported.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        [event] = self.conn.receive_data(self.factory.method(ch, "channel.flow", active=False))
        assert isinstance(event, MethodReceived)
        self.assertEqual(event.method.NAME, "channel.flow")
        [flow_ok] = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual((flow_ok.NAME, flow_ok.active), ("channel.flow-ok", False))

    def test_misuse(self) -> None:
        """
        Methods a client may not send, or on the wrong channel, or on a
        channel that is not open, raise L{LocalProtocolError} and send nothing.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        self.assertRaises(LocalProtocolError, self.conn.send_method, ch, self.ms.Basic.Deliver())
        self.assertRaises(LocalProtocolError, self.conn.send_method, 0, self.ms.Queue.Declare())
        self.assertRaises(LocalProtocolError, self.conn.send_method, ch, self.ms.Connection.Close())
        self.assertRaises(
            LocalProtocolError, self.conn.send_method, ch, self.ms.Connection.Blocked()
        )
        self.assertRaises(
            LocalProtocolError, self.conn.send_method, ch, self.ms.Basic.Deliver(delivery_tag=1)
        )
        self.assertRaises(
            LocalProtocolError, self.conn.send_method, ch, self.ms.Basic.Ack(delivery_tag=2**64)
        )
        self.assertRaises(LocalProtocolError, self.conn.send_method, 9, self.ms.Queue.Declare())
        self.assertRaises(LocalProtocolError, self.conn.send_method, 5000, self.ms.Channel.Open())
        self.assertRaises(
            LocalProtocolError, self.conn.send_method, ch, self.ms.Queue.Declare(queue="x" * 256)
        )
        self.assertEqual(self.conn.data_to_send(), b"")

    def test_blocked_reported(self) -> None:
        """
        C{connection.blocked} and C{unblocked} are reported as methods on
        channel 0.
        """
        [blocked] = self.conn.receive_data(
            self.factory.method(0, "connection.blocked", reason="low on memory")
        )
        assert isinstance(blocked, MethodReceived)
        self.assertEqual(blocked.method.reason, "low on memory")
        [unblocked] = self.conn.receive_data(self.factory.method(0, "connection.unblocked"))
        assert isinstance(unblocked, MethodReceived)
        self.assertEqual(unblocked.method.NAME, "connection.unblocked")


class AckTests(SynchronousTestCase):
    """
    C{ack}, the core's way to send C{basic.ack} without a method object,
    puts the same bytes on the wire as L{Connection.send_method} with a
    C{Basic.Ack}, in the same order, and refuses what it refuses.
    """

    SPECS: ClassVar[list[str]] = [
        "0-8/amqp0-8.stripped.xml",
        "0-8-qpid/amqp0-8-qpid.stripped.xml",
        "0-9/amqp0-9.stripped.xml",
        "0-9-qpid/amqp0-9-qpid.stripped.xml",
        "0-9-1/amqp0-9-1.stripped.xml",
    ]

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection()
        self.ch = open_channel(self.conn, self.factory, self.parser)

    @settings(max_examples=200, deadline=None)
    @given(tag=st.integers(0, 2**64 - 1), multiple=st.booleans())
    def test_same_bytes(self, tag: int, multiple: bool) -> None:
        """
        Any delivery tag, either way of C{multiple}.
        """
        self.conn.ack(self.ch, tag, multiple)
        fast = self.conn.data_to_send()
        method = self.conn.methods.Basic.Ack(delivery_tag=tag, multiple=multiple)
        self.conn.send_method(self.ch, method)
        self.assertEqual(fast, self.conn.data_to_send())

    def test_every_spec(self) -> None:
        """
        With each reference spec: the loaded spec's C{basic.ack}.
        """
        for name in [None, *self.SPECS]:
            kwargs = {} if name is None else {"spec": reference_spec(name)}
            conn, factory, parser = open_connection(**kwargs)
            ch = open_channel(conn, factory, parser, 3)
            conn.ack(ch, 2**40 + 5, True)
            [method] = parser.methods_sent(conn.data_to_send())
            self.assertEqual(method, conn.methods.Basic.Ack(delivery_tag=2**40 + 5, multiple=True))

    def test_waits_behind_a_call(self) -> None:
        """
        Behind a synchronous call waiting for its reply (and what queued
        behind it), an ack waits its turn.
        """
        ms = self.conn.methods
        self.conn.send_method(self.ch, ms.Queue.Declare(queue="a"))
        self.conn.send_method(self.ch, ms.Queue.Declare(queue="b"))
        self.conn.ack(self.ch, 7)
        sent = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual([m.NAME for m in sent], ["queue.declare"])
        self.conn.receive_data(self.factory.method(self.ch, "queue.declare-ok", queue="a"))
        self.conn.receive_data(self.factory.method(self.ch, "queue.declare-ok", queue="b"))
        sent = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(sent, [ms.Queue.Declare(queue="b"), ms.Basic.Ack(delivery_tag=7)])

    def test_refused_alike(self) -> None:
        """
        A tag that does not fit, a tag that is not an integer, a
        C{multiple} that is not a bit, a channel that is not open: the
        error L{Connection.send_method} gives, and nothing is sent; 1 is
        a bit.
        """
        ack = self.conn.methods.Basic.Ack
        cases: list[tuple[int, Any, Any]] = [
            (self.ch, -1, False),
            (self.ch, 2**64, False),
            (self.ch, "7", False),
            (self.ch, 7.0, False),
            (self.ch, 7, "yes"),
            (self.ch, 7, 2),
            (self.ch + 1, 7, False),
        ]
        for channel, tag, multiple in cases:
            with self.assertRaises(Exception) as reference:
                self.conn.send_method(channel, ack(delivery_tag=tag, multiple=multiple))
            with self.assertRaises(type(reference.exception)) as fast:
                self.conn.ack(channel, tag, multiple)
            self.assertEqual(str(fast.exception), str(reference.exception))
            self.assertEqual(self.conn.data_to_send(), b"", (channel, tag))
        self.conn.ack(self.ch, 7, 1)
        [sent] = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(sent, ack(delivery_tag=7, multiple=True))


class ContentTests(SynchronousTestCase):
    """
    Content: outgoing split at frame_max, incoming reassembled per channel.
    """

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection()
        self.ch = open_channel(self.conn, self.factory, self.parser)

    def test_outgoing_split(self) -> None:
        """
        A body larger than frame_max goes out in frames no larger than it.
        """
        body = bytes(range(256)) * 1200
        self.conn.publish(self.ch, body, routing_key="q")
        frames = self.parser.feed(self.conn.data_to_send())
        self.assertEqual([f[0] for f in frames[:2]], [_frames.FRAME_METHOD, _frames.FRAME_HEADER])
        bodies = [f[2] for f in frames[2:]]
        self.assertEqual(b"".join(bodies), body)
        self.assertTrue(all(len(b) <= self.conn.frame_max - 8 for b in bodies))
        self.assertEqual(frames[1][2][1], len(body))

    def test_publish_frames_match_reference(self) -> None:
        """
        The publish path (method frames kept encoded, one C{struct} call for
        a bare header) writes the same bytes as encoding each frame afresh
        with the method's and properties' own encoders,
        for bodies around C{frame_max}, empty bodies, and empty, equal and
        given properties, on more than one channel.
        """
        other = open_channel(self.conn, self.factory, self.parser)
        props_cls = self.conn.methods.properties[60]
        method = self.conn.methods["basic.publish"](exchange="ex", routing_key="rk", mandatory=True)
        body_max = self.conn.frame_max - _frames.FRAME_OVERHEAD
        bodies = [b"", b"x", b"y" * 100, b"z" * body_max, b"w" * (body_max + 1)]
        all_props = [
            self.conn.no_properties,
            props_cls(),
            props_cls(content_type="text/plain", headers={"a": 1}, correlation_id="7"),
        ]
        for channel in (self.ch, other, self.ch):
            for body in bodies:
                for props in all_props:
                    expected = b"".join(
                        [
                            method.encode_frame(channel),
                            props.header_frame(channel, len(body)),
                            *_frames.body_frames(channel, body, self.conn.frame_max),
                        ]
                    )
                    self.conn.send_method(channel, method, props, body)
                    self.assertEqual(self.conn.data_to_send(), expected, (channel, len(body)))

    def test_publish_value_too_long_queues_nothing(self) -> None:
        """
        A routing key over 255 bytes fails the publish with
        L{LocalProtocolError} naming the field, and nothing is queued.
        """
        method = self.conn.methods["basic.publish"](routing_key="k" * 256)
        exc = self.assertRaises(
            LocalProtocolError,
            self.conn.send_method,
            self.ch,
            method,
            self.conn.no_properties,
            b"x",
        )
        self.assertIn("routing_key", str(exc))
        self.assertEqual(self.conn.data_to_send(), b"")

    def test_empty_body(self) -> None:
        """
        An empty body sends a header and no body frame, and an incoming one
        is delivered on its header.
        """
        self.conn.publish(self.ch, b"")
        frames = self.parser.feed(self.conn.data_to_send())
        self.assertEqual(len(frames), 2)
        [event] = self.conn.receive_data(
            self.factory.content(self.ch, "basic.deliver", b"", delivery_tag=1)
        )
        assert isinstance(event, ContentReceived)
        self.assertEqual(event.body, b"")

    def test_delivery_reassembled(self) -> None:
        """
        A delivery in many body frames, interleaved with another channel's
        frames, arrives whole with its properties.
        """
        other = open_channel(self.conn, self.factory, self.parser)
        body = b"0123456789" * 5000
        stream = self.factory.content(
            self.ch,
            "basic.deliver",
            body,
            frame_max=4096,
            properties={"content_type": "text/plain", "headers": {"a": 1}},
            consumer_tag="c",
            delivery_tag=7,
            routing_key="rk",
        )
        half = len(stream) // 2
        cut = stream.index(b"\xce\x03", half) + 1  # at a frame boundary
        events = self.conn.receive_data(stream[:cut])
        events += self.conn.receive_data(
            self.factory.content(other, "basic.deliver", b"o", delivery_tag=1)
        )
        events += self.conn.receive_data(stream[cut:])
        self.assertEqual(
            [e.channel for e in events if isinstance(e, ContentReceived)], [other, self.ch]
        )
        event = events[-1]
        assert isinstance(event, ContentReceived)
        self.assertEqual(event.body, body)
        self.assertEqual(event.method.delivery_tag, 7)
        self.assertEqual(event.properties.content_type, "text/plain")
        self.assertEqual(event.properties.headers, {"a": 1})

    def test_oversized_message_closes_channel(self) -> None:
        """
        A message over the size cap closes its channel with 311, naming the
        method that carried it (C{basic.deliver}, 60.60), and discards its
        frames; the connection and other channels go on.
        """
        conn, factory, parser = open_connection(max_message_size=1000)
        ch = open_channel(conn, factory, parser)
        other = open_channel(conn, factory, parser)
        events = conn.receive_data(
            factory.content(ch, "basic.deliver", b"x" * 5000, delivery_tag=1)
        )
        [event] = events
        assert isinstance(event, ChannelClosed)
        self.assertIsInstance(event.error, errors.ContentTooLarge)
        assert event.error is not None
        self.assertEqual(event.error.reply_code, 311)
        self.assertEqual((event.error.class_id, event.error.method_id), (60, 60))
        [close] = parser.methods_sent(conn.data_to_send())
        self.assertEqual(
            (close.NAME, close.reply_code, close.class_id, close.method_id),
            ("channel.close", 311, 60, 60),
        )
        [ok] = conn.receive_data(factory.content(other, "basic.deliver", b"fine", delivery_tag=1))
        self.assertIsInstance(ok, ContentReceived)
        self.assertEqual(conn.receive_data(factory.method(ch, "channel.close-ok")), [])
        self.assertEqual(conn.channel_state(ch), ChannelState.CLOSED)


class ByteFeedingTests(SynchronousTestCase):
    """
    The same stream gives the same events however it is cut.
    """

    def stream(self, factory: FrameFactory, ch: int) -> bytes:
        return (
            factory.content(ch, "basic.deliver", b"a" * 300, frame_max=100, delivery_tag=1)
            + factory.method(ch, "basic.ack", delivery_tag=1)
            + _frames.HEARTBEAT
            + factory.content(
                ch, "basic.deliver", b"b", delivery_tag=2, properties={"headers": {"k": [1, "x"]}}
            )
        )

    def events_for(self, chunks: list[bytes]) -> list[object]:
        conn, factory, parser = open_connection()
        self.assertEqual(open_channel(conn, factory, parser), 1)
        events: list[object] = []
        for chunk in chunks:
            events += conn.receive_data(chunk)
        return events

    def test_whole_byte_by_byte_and_every_split(self) -> None:
        """
        Fed whole, one byte at a time, and split at every offset, the stream
        yields the same events.
        """
        data = self.stream(FrameFactory(), 1)
        expected = self.events_for([data])
        self.assertEqual(len(expected), 3)
        self.assertEqual(self.events_for([data[i : i + 1] for i in range(len(data))]), expected)
        for i in range(len(data) + 1):
            self.assertEqual(self.events_for([data[:i], data[i:]]), expected, f"split at {i}")


class BadInputTests(SynchronousTestCase):
    """
    Malformed or hostile input gets a L{RemoteProtocolError} with the reply
    code to close with, and a C{connection.close} carrying it goes out.
    """

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection()
        self.ch = open_channel(self.conn, self.factory, self.parser)

    def check(self, data: bytes, code: int) -> RemoteProtocolError:
        exc = self.assertRaises(RemoteProtocolError, self.conn.receive_data, data)
        self.assertEqual(exc.reply_code, code, str(exc))
        self.assertEqual(self.conn.state, ConnectionState.CLOSED)
        [close] = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual((close.NAME, close.reply_code), ("connection.close", code))
        self.assertEqual(self.conn.receive_data(b"more"), [])
        return exc

    def test_bad_frame_end(self) -> None:
        """A wrong frame-end octet is a frame error (501)."""
        frame = self.factory.method(self.ch, "basic.ack", delivery_tag=1)
        self.check(frame[:-1] + b"\x00", 501)

    def test_unknown_frame_type(self) -> None:
        """An unknown frame type is a frame error (501)."""
        self.check(b"\x09\x00\x01\x00\x00\x00\x00\xce", 501)

    def test_frame_too_large(self) -> None:
        """A frame over frame_max is a frame error, before it is buffered."""
        self.check(b"\x03\x00\x01\x7f\xff\xff\xff", 501)

    def test_heartbeat_on_channel(self) -> None:
        """A heartbeat on a channel other than 0 is a frame error."""
        self.check(b"\x08\x00\x01\x00\x00\x00\x00\xce", 501)

    def test_header_without_method(self) -> None:
        """A content header with no content method before it is unexpected (505)."""
        props = self.conn.methods.properties[60]()
        self.check(
            b"".join(_frames.content_frames(self.ch, props.encode_header(1), b"x", 0))[:-9], 505
        )

    def test_body_without_header(self) -> None:
        """A body frame with no header before it is unexpected (505)."""
        self.check(b"\x03\x00\x01\x00\x00\x00\x01x\xce", 505)

    def test_body_longer_than_declared(self) -> None:
        """More body bytes than the header declared is unexpected (505)."""
        method = self.factory.method(self.ch, "basic.deliver", delivery_tag=1)
        props = self.conn.methods.properties[60]()
        frames = _frames.content_frames(self.ch, props.encode_header(2), b"abc", 0)
        self.check(method + b"".join(frames), 505)

    def test_method_inside_content(self) -> None:
        """A method while a content is incomplete is unexpected (505)."""
        method = self.factory.method(self.ch, "basic.deliver", delivery_tag=1)
        self.check(method + self.factory.method(self.ch, "basic.ack"), 505)

    def test_content_on_wrong_channel(self) -> None:
        """Content for a channel that is not open is a channel error (504)."""
        self.check(self.factory.content(7, "basic.deliver", b"x", delivery_tag=1), 504)

    def test_content_on_channel_zero(self) -> None:
        """A content frame on channel 0 is unexpected (505)."""
        self.check(b"\x03\x00\x00\x00\x00\x00\x01x\xce", 505)

    def test_unknown_method(self) -> None:
        """Unknown class or method ids are not implemented (540)."""
        self.check(_frames.method_frame(self.ch, b"\x00\x63\x00\x01"), 540)

    def test_truncated_table(self) -> None:
        """A method whose table runs past the frame is a syntax error (502)."""
        payload = self.conn.methods.Basic.Deliver(delivery_tag=1).encode()
        bad = self.conn.methods["queue.declare-ok"](queue="q").encode()
        self.assertTrue(payload)
        # connection.blocked-like table damage: a table claiming 2**32-1 bytes
        start = self.factory.methods["channel.close"](reply_code=1).encode()
        self.assertTrue(start and bad)
        frame = _frames.method_frame(
            self.ch,
            b"\x00\x3c\x00\x1e"
            + b"\x00\x00"
            + b"\x00"
            + b"\x00"
            + b"\x00\x00"
            + b"\xff\xff\xff\xff",
        )
        self.check(frame, 502)

    def test_unsolicited_reply(self) -> None:
        """A reply nobody asked for is unexpected (505)."""
        self.check(self.factory.method(self.ch, "queue.declare-ok", queue="q"), 505)

    def test_client_only_method_from_broker(self) -> None:
        """A method only clients send (queue.declare) is invalid from the broker (503)."""
        self.check(self.factory.method(self.ch, "queue.declare", queue="q"), 503)

    def test_client_only_content_method_from_broker(self) -> None:
        """basic.publish from the broker is invalid too (503)."""
        self.check(self.factory.content(self.ch, "basic.publish", b"hi"), 503)

    def test_connection_method_on_channel(self) -> None:
        """A connection method on a channel is invalid (503)."""
        self.check(self.factory.method(self.ch, "connection.blocked"), 503)


class HeartbeatTests(SynchronousTestCase):
    """
    Heartbeats through L{Connection.tick}.
    """

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection(heartbeat=10)
        self.assertEqual(self.conn.heartbeat, 10)

    def test_sent_when_quiet(self) -> None:
        """
        A heartbeat goes out after an interval with nothing sent.
        """
        self.conn.tick(0)
        self.conn.tick(5)
        self.assertEqual(self.conn.data_to_send(), b"")
        self.conn.tick(10)
        self.assertEqual(self.conn.data_to_send(), _frames.HEARTBEAT)

    def test_idle_heartbeats_keep_the_interval(self) -> None:
        """
        Ticking every half interval, an idle connection sends a heartbeat
        every interval: a heartbeat is not itself traffic that puts off the
        next one.
        """
        sent_at = []
        for now in range(0, 45, 5):
            self.conn.receive_data(_frames.HEARTBEAT)
            self.conn.tick(now)
            if self.conn.data_to_send() == _frames.HEARTBEAT:
                sent_at.append(now)
        self.assertEqual(sent_at, [10, 20, 30, 40])

    def test_not_sent_while_busy(self) -> None:
        """
        Traffic counts: no heartbeat while we keep sending.
        """
        ch = open_channel(self.conn, self.factory, self.parser)
        for now in range(0, 40, 5):
            self.conn.publish(ch, b"x")
            self.conn.receive_data(_frames.HEARTBEAT)
            self.conn.tick(now)
            self.assertNotIn(_frames.HEARTBEAT, [self.conn.data_to_send()[-8:]])

    def test_silent_peer(self) -> None:
        """
        A broker silent for two intervals ends the connection with
        L{errors.HeartbeatTimeout}.
        """
        self.assertEqual(self.conn.tick(0), [])
        self.conn.receive_data(_frames.HEARTBEAT)
        self.assertEqual(self.conn.tick(15), [])
        self.assertEqual(self.conn.tick(30), [])
        [event] = self.conn.tick(35.5)
        assert isinstance(event, ConnectionClosed)
        self.assertIsInstance(event.error, errors.HeartbeatTimeout)
        self.assertEqual(self.conn.state, ConnectionState.CLOSED)

    def test_disabled(self) -> None:
        """
        With heartbeat 0 tick never sends or times out.
        """
        conn, _, _ = open_connection(heartbeat=0, tune={"heartbeat": 0})
        self.assertEqual(conn.heartbeat, 0)
        self.assertEqual(conn.tick(0), [])
        self.assertEqual(conn.tick(1e6), [])
        self.assertEqual(conn.data_to_send(), b"")


class CloseTests(SynchronousTestCase):
    """
    Closing the connection, both ways.
    """

    def test_client_close(self) -> None:
        """
        C{close} sends C{connection.close}; channel frames arriving meanwhile
        are discarded; C{close-ok} ends with no error.
        """
        conn, factory, parser = open_connection()
        ch = open_channel(conn, factory, parser)
        conn.close(200, "bye")
        [close] = parser.methods_sent(conn.data_to_send())
        self.assertEqual(
            (close.NAME, close.reply_code, close.reply_text), ("connection.close", 200, "bye")
        )
        self.assertEqual(
            conn.receive_data(factory.content(ch, "basic.deliver", b"x", delivery_tag=1)), []
        )
        [event] = conn.receive_data(factory.method(0, "connection.close-ok"))
        assert isinstance(event, ConnectionClosed)
        self.assertIsNone(event.error)
        self.assertRaises(LocalProtocolError, conn.open_channel)

    def test_broker_close(self) -> None:
        """
        A C{connection.close} from the broker is acknowledged and reported
        with its typed error.
        """
        conn, factory, parser = open_connection()
        [event] = conn.receive_data(
            factory.method(
                0, "connection.close", reply_code=320, reply_text="CONNECTION_FORCED - shutdown"
            )
        )
        assert isinstance(event, ConnectionClosed)
        self.assertIsInstance(event.error, errors.ConnectionForced)
        [ok] = parser.methods_sent(conn.data_to_send())
        self.assertEqual(ok.NAME, "connection.close-ok")


class TransitionTableTests(SynchronousTestCase):
    """
    Every (state, input) pair either transitions as the table says or
    raises.
    """

    CONNECTION_INPUTS = sorted(
        {name for _, name in _CONNECTION_TRANSITIONS}
        | {"connection.close-ok", "connection.start", "bogus"}
    )
    CHANNEL_INPUTS = sorted({name for _, name in _CHANNEL_TRANSITIONS} | {"bogus"})

    def test_connection_table(self) -> None:
        """
        The connection machine follows its table for every pair, raising
        L{LocalProtocolError} for local inputs and L{RemoteProtocolError} for
        received ones that are missing.
        """
        for state in ConnectionState:
            for name in self.CONNECTION_INPUTS:
                for local in (True, False):
                    conn = Connection()
                    conn.state = state
                    expected = _CONNECTION_TRANSITIONS.get((state, name))
                    if expected is None:
                        error = LocalProtocolError if local else RemoteProtocolError
                        self.assertRaises(error, conn._connection_input, name, local)
                        self.assertEqual(conn.state, state)
                    else:
                        conn._connection_input(name, local)
                        self.assertEqual(conn.state, expected, (state, name))

    def test_channel_table(self) -> None:
        """
        The channel machine follows its table for every pair.
        """
        for state in ChannelState:
            for name in self.CHANNEL_INPUTS:
                for local in (True, False):
                    ch = _Channel(1)
                    ch.state = state
                    expected = _CHANNEL_TRANSITIONS.get((state, name))
                    if expected is None:
                        error = LocalProtocolError if local else RemoteProtocolError
                        self.assertRaises(error, Connection()._channel_input, ch, name, local)
                        self.assertEqual(ch.state, state)
                    else:
                        Connection()._channel_input(ch, name, local)
                        self.assertEqual(ch.state, expected, (state, name))

    def test_shortcuts_agree_with_the_tables(self) -> None:
        """
        The hot paths skip the table for the pairs that leave the state
        alone: a channel frame while the connection is open, a method
        received on an open channel.  The tables say the same.
        """
        self.assertIs(
            _CONNECTION_TRANSITIONS[(ConnectionState.OPEN, "channel-frame")], ConnectionState.OPEN
        )
        self.assertIs(_CHANNEL_TRANSITIONS[(ChannelState.OPEN, "receive")], ChannelState.OPEN)

    def test_closed_connection_refuses_calls(self) -> None:
        """
        After the connection closes, calls raise and received bytes are
        ignored.
        """
        conn, factory, _ = open_connection()
        conn.receive_data(factory.method(0, "connection.close", reply_code=320))
        self.assertRaises(LocalProtocolError, conn.open_channel)
        self.assertEqual(conn.receive_data(factory.method(1, "channel.open-ok")), [])


class OlderVersionTests(SynchronousTestCase):
    """
    The core speaks the version of the spec it is given: 0-8 and 0-9 send
    their own protocol header, shake hands and carry content.
    """

    HEADERS: ClassVar[dict[str, bytes]] = {
        "0-8/amqp0-8.stripped.xml": b"AMQP\x01\x01\x08\x00",
        "0-8-qpid/amqp0-8-qpid.stripped.xml": b"AMQP\x01\x01\x08\x00",
        "0-9/amqp0-9.stripped.xml": b"AMQP\x01\x01\x00\x09",
        "0-9-qpid/amqp0-9-qpid.stripped.xml": b"AMQP\x01\x01\x00\x09",
        "0-9-1/amqp0-9-1.stripped.xml": b"AMQP\x00\x00\x09\x01",
    }

    def test_header_handshake_and_content(self) -> None:
        """
        For each 0-8, 0-9 and 0-9-1 reference file, the first bytes sent
        are that version's protocol header; the handshake opens the
        connection; a publish goes out as method, header and body, and a
        delivery comes back whole.
        """
        for name, header in self.HEADERS.items():
            spec = reference_spec(name)
            conn = Connection(spec=spec, credentials=Credentials())
            self.assertEqual(conn.data_to_send()[:8], header, name)
            factory = FrameFactory(spec)
            parser = SentParser(spec)
            parser.feed(header)
            conn.receive_data(factory.start())
            conn.receive_data(factory.tune(frame_max=4096))
            [opened] = conn.receive_data(factory.open_ok())
            self.assertIsInstance(opened, ConnectionOpened, name)
            self.assertEqual(opened.frame_max, 4096)
            parser.feed(conn.data_to_send())
            ch = open_channel(conn, factory, parser)
            conn.publish(ch, b"x" * 5000, routing_key="rk")
            sent = parser.feed(conn.data_to_send())
            self.assertEqual([kind for kind, _, _ in sent], [1, 2, 3, 3], name)
            self.assertEqual(sent[0][2].routing_key, "rk")
            self.assertEqual(sent[1][2][1], 5000)
            self.assertEqual(b"".join(item for kind, _, item in sent if kind == 3), b"x" * 5000)
            [event] = conn.receive_data(
                factory.content(
                    ch, "basic.deliver", b"body", 4096, {"content_type": "t"}, delivery_tag=3
                )
            )
            assert isinstance(event, ContentReceived)
            self.assertEqual((event.body, event.method.delivery_tag), (b"body", 3), name)
            self.assertEqual(event.properties.content_type, "t")


class ConstructionTests(SynchronousTestCase):
    """
    C{Connection(params=None, **overrides)}: parameters from a
    L{ConnectionParameters}, changed by name.
    """

    def test_defaults(self) -> None:
        """
        With no parameters the core speaks the default 0-9-1 spec, opens
        C{/} and has no credentials (it waits for L{Connection.authenticate}).
        """
        conn = Connection()
        self.assertIsInstance(conn.params, ConnectionParameters)
        self.assertIsNone(conn.credentials)
        self.assertIsNone(conn.params.credentials)
        self.assertIs(conn.spec, load())
        self.assertEqual(conn.vhost, "/")
        self.assertEqual(conn.data_to_send(), b"AMQP\x00\x00\x09\x01")

    def test_params_and_overrides(self) -> None:
        """
        Overrides change the given parameters by name, in a copy: the
        caller's object is left alone.
        """
        credentials = Credentials("u", "p")
        params = ConnectionParameters(credentials=credentials, vhost="/a", heartbeat=5)
        conn = Connection(params, vhost="/b", max_message_size=10)
        self.assertEqual((conn.params.vhost, conn.vhost), ("/b", "/b"))
        self.assertEqual((conn.params.heartbeat, conn.max_message_size), (5, 10))
        self.assertIs(conn.credentials, credentials)
        self.assertEqual(params.vhost, "/a")
        self.assertIs(Connection(params).params, params)

    def test_unknown_override(self) -> None:
        """
        An override that names no parameter is a C{TypeError}.
        """
        self.assertRaises(TypeError, Connection, vhsot="/")


class AuthenticateTests(SynchronousTestCase):
    """
    A core made without credentials reports C{connection.start} and waits
    for L{Connection.authenticate}.
    """

    def test_start_reported_before_answer(self) -> None:
        """
        C{start} is reported as a L{MethodReceived} on channel 0 and nothing
        is sent until the credentials are given; then C{start-ok} carries
        them.
        """
        conn = Connection()
        factory, parser = FrameFactory(), SentParser()
        parser.feed(conn.data_to_send())
        [event] = conn.receive_data(factory.start())
        assert isinstance(event, MethodReceived)
        self.assertEqual((event.channel, event.method.NAME), (0, "connection.start"))
        self.assertEqual(event.method.mechanisms, b"PLAIN AMQPLAIN")
        self.assertEqual(conn.data_to_send(), b"")
        self.assertEqual(conn.state, ConnectionState.AWAIT_CREDENTIALS)
        self.assertEqual(conn.authenticate(Credentials("u", "p", "AMQPLAIN")), [])
        [start_ok] = parser.methods_sent(conn.data_to_send())
        self.assertEqual((start_ok.NAME, start_ok.mechanism), ("connection.start-ok", "AMQPLAIN"))
        self.assertEqual(conn.state, ConnectionState.AWAIT_TUNE)
        self.assertRaises(LocalProtocolError, conn.authenticate, Credentials())

    def test_credentials_before_start(self) -> None:
        """
        Credentials given before C{start} arrives answer it at once.
        """
        conn = Connection()
        factory, parser = FrameFactory(), SentParser()
        parser.feed(conn.data_to_send())
        self.assertEqual(conn.authenticate(Credentials("u", "p")), [])
        self.assertEqual(conn.data_to_send(), b"")
        [event] = conn.receive_data(factory.start())
        self.assertIsInstance(event, MethodReceived)
        [start_ok] = parser.methods_sent(conn.data_to_send())
        self.assertEqual(start_ok.response, b"\0u\0p")

    def test_mechanism_not_offered(self) -> None:
        """
        Credentials whose mechanism the broker does not offer end the
        connection with L{errors.AuthenticationError}.
        """
        conn = Connection()
        conn.receive_data(FrameFactory().start(mechanisms=b"PLAIN"))
        [event] = conn.authenticate(Credentials(mechanism="EXTERNAL"))
        assert isinstance(event, ConnectionClosed)
        self.assertIsInstance(event.error, errors.AuthenticationError)
        self.assertEqual(conn.state, ConnectionState.CLOSED)


class ReplyTests(SynchronousTestCase):
    """
    Replies to synchronous calls come as L{ReplyReceived}; methods that
    answer no call as L{MethodReceived} or L{ContentReceived}.
    """

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection()
        self.ms = self.conn.methods
        self.ch = open_channel(self.conn, self.factory, self.parser)

    def test_reply(self) -> None:
        """
        C{queue.declare-ok} answering C{queue.declare} is a
        L{ReplyReceived} without content.
        """
        self.conn.send_method(self.ch, self.ms.Queue.Declare(queue="q"))
        [event] = self.conn.receive_data(
            self.factory.method(self.ch, "queue.declare-ok", queue="q", message_count=3)
        )
        self.assertEqual(
            event, ReplyReceived(self.ch, self.ms.Queue.DeclareOk(queue="q", message_count=3))
        )
        assert isinstance(event, ReplyReceived)
        self.assertIsNone(event.properties)
        self.assertEqual(event.body, b"")

    def test_get_ok_with_content(self) -> None:
        """
        C{basic.get-ok} is a L{ReplyReceived} carrying its properties and
        whole body, even when the body comes in several frames;
        C{basic.get-empty} is one without content.
        """
        self.conn.send_method(self.ch, self.ms.Basic.Get(queue="q"))
        body = b"0123456789" * 1000
        events = self.conn.receive_data(
            self.factory.content(
                self.ch,
                "basic.get-ok",
                body,
                frame_max=4096,
                properties={"content_type": "text/plain"},
                delivery_tag=5,
                message_count=1,
            )
        )
        get_ok = self.ms.Basic.GetOk(delivery_tag=5, message_count=1)
        props = self.ms.Basic.Properties(content_type="text/plain")
        self.assertEqual(events, [ReplyReceived(self.ch, get_ok, props, body)])
        self.conn.send_method(self.ch, self.ms.Basic.Get(queue="q"))
        self.assertEqual(
            self.conn.receive_data(self.factory.method(self.ch, "basic.get-empty")),
            [ReplyReceived(self.ch, self.ms.Basic.GetEmpty())],
        )

    def test_delivery_while_get_waits(self) -> None:
        """
        A delivery arriving while a C{basic.get} waits is content that
        answers no call; the get-ok after it is the reply.
        """
        self.conn.send_method(self.ch, self.ms.Basic.Get(queue="q"))
        delivery = self.factory.content(self.ch, "basic.deliver", b"d", delivery_tag=1)
        get_ok = self.factory.content(self.ch, "basic.get-ok", b"g", delivery_tag=2)
        events = self.conn.receive_data(delivery + get_ok)
        self.assertEqual([type(e) for e in events], [ContentReceived, ReplyReceived])
        self.assertEqual([e.body for e in events], [b"d", b"g"])  # type: ignore[attr-defined]

    def test_unsolicited_methods(self) -> None:
        """
        While a call waits, a method that answers none (C{basic.ack} in
        confirm mode) is still a L{MethodReceived}, and the reply that
        follows a L{ReplyReceived}.
        """
        self.conn.send_method(self.ch, self.ms.Queue.Declare(queue="q"))
        events = self.conn.receive_data(
            self.factory.method(self.ch, "basic.ack", delivery_tag=1)
            + self.factory.method(self.ch, "queue.declare-ok", queue="q")
        )
        self.assertEqual([type(e) for e in events], [MethodReceived, ReplyReceived])

    def test_update_secret_reply_on_channel_0(self) -> None:
        """
        C{connection.update-secret-ok} is a L{ReplyReceived} on channel 0; a
        second update waits for the first one's reply; a reply nobody asked
        for is unexpected (505).
        """
        update = self.ms["connection.update-secret"]
        self.conn.send_method(0, update(new_secret=b"one", reason="r"))
        self.conn.send_method(0, update(new_secret=b"two", reason="r"))
        [first] = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(first.new_secret, b"one")
        [event] = self.conn.receive_data(self.factory.method(0, "connection.update-secret-ok"))
        self.assertEqual(event, ReplyReceived(0, self.ms["connection.update-secret-ok"]()))
        [second] = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual(second.new_secret, b"two")
        [event] = self.conn.receive_data(self.factory.method(0, "connection.update-secret-ok"))
        self.assertIsInstance(event, ReplyReceived)
        exc = self.assertRaises(
            RemoteProtocolError,
            self.conn.receive_data,
            self.factory.method(0, "connection.update-secret-ok"),
        )
        self.assertEqual(exc.reply_code, 505)


class FreeChannelTests(SynchronousTestCase):
    """
    L{Connection.free_channel} picks the lowest unused id.
    """

    def test_lowest_free(self) -> None:
        """
        The lowest id that is neither open nor excluded; asking reserves
        nothing.
        """
        conn, factory, parser = open_connection(channel_max=3)
        self.assertEqual(conn.free_channel(), 1)
        self.assertEqual(conn.free_channel(), 1)
        self.assertEqual(conn.free_channel(exclude={1}), 2)
        self.assertEqual(conn.free_channel(exclude=[1, 2]), 3)
        self.assertEqual(open_channel(conn, factory, parser), 1)
        self.assertEqual(conn.free_channel(), 2)
        self.assertEqual(conn.free_channel(exclude={2}), 3)

    def test_all_taken(self) -> None:
        """
        When every id up to C{channel_max} is open or excluded,
        L{LocalProtocolError} (503) says so.
        """
        conn, factory, parser = open_connection(channel_max=3)
        exc = self.assertRaises(LocalProtocolError, conn.free_channel, exclude=range(1, 4))
        self.assertEqual(exc.reply_code, 503)
        self.assertIn("3 channels", str(exc))
        open_channel(conn, factory, parser)
        self.assertRaises(LocalProtocolError, conn.free_channel, exclude={2, 3})


class HeartbeatDueTests(SynchronousTestCase):
    """
    L{Connection.heartbeat_due} and L{Connection.send_heartbeat}, for a
    driver that sends heartbeats itself.
    """

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection(heartbeat=10)

    def test_due_after_a_quiet_interval(self) -> None:
        """
        A heartbeat is due once nothing was sent for an interval, as
        L{Connection.tick} would send it; asking queues nothing.
        """
        self.assertFalse(self.conn.heartbeat_due(0))
        self.assertFalse(self.conn.heartbeat_due(9.9))
        self.assertTrue(self.conn.heartbeat_due(10))
        self.assertEqual(self.conn.data_to_send(), b"")
        self.assertEqual(self.conn.tick(10), [])
        self.assertEqual(self.conn.data_to_send(), _frames.HEARTBEAT)

    def test_traffic_puts_it_off(self) -> None:
        """
        Anything sent counts: after a publish at 8 the next heartbeat is due
        at 18.
        """
        self.conn.heartbeat_due(0)
        self.conn.publish(open_channel(self.conn, self.factory, self.parser), b"x")
        self.conn.data_to_send()
        self.assertFalse(self.conn.heartbeat_due(8))
        self.assertFalse(self.conn.heartbeat_due(17.9))
        self.assertTrue(self.conn.heartbeat_due(18))

    def test_send_heartbeat(self) -> None:
        """
        C{send_heartbeat} queues a heartbeat whether or not one is due; with
        the time it counts as traffic, so the next is due an interval later
        and L{Connection.tick} sends none before.
        """
        self.conn.tick(0)
        self.conn.send_heartbeat(3)
        self.assertEqual(self.conn.data_to_send(), _frames.HEARTBEAT)
        self.conn.receive_data(_frames.HEARTBEAT)
        self.assertFalse(self.conn.heartbeat_due(12.9))
        self.assertEqual(self.conn.tick(12.9), [])
        self.assertEqual(self.conn.data_to_send(), b"")
        self.assertTrue(self.conn.heartbeat_due(13))
        self.conn.send_heartbeat()
        self.assertEqual(self.conn.data_to_send(), _frames.HEARTBEAT)

    def test_not_before_open_or_after_close(self) -> None:
        """
        Before the connection is open, after it closed, or with heartbeats
        off, nothing is due; C{send_heartbeat} sends nothing before the
        connection is open or after it closed.
        """
        conn = Connection(credentials=Credentials())
        conn.data_to_send()
        self.assertFalse(conn.heartbeat_due(100))
        conn.send_heartbeat(100)
        self.assertEqual(conn.data_to_send(), b"")
        off, _, _ = open_connection(heartbeat=0, tune={"heartbeat": 0})
        self.assertFalse(off.heartbeat_due(1e6))
        self.conn.receive_data(self.factory.method(0, "connection.close", reply_code=320))
        self.conn.data_to_send()
        self.assertFalse(self.conn.heartbeat_due(1e6))
        self.conn.send_heartbeat(1e6)
        self.assertEqual(self.conn.data_to_send(), b"")


class CapabilitiesTests(SynchronousTestCase):
    """
    The capabilities we advertise depend on the spec: the broker must not
    use an extension whose methods the client cannot decode.
    """

    ALL: ClassVar[frozenset[str]] = ALL_CAPABILITIES
    #: what a spec without RabbitMQ's extensions supports: broker-sent
    #: basic.cancel is accepted whatever its chassis says
    PLAIN: ClassVar[set[str]] = {
        "consumer_cancel_notify",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    }

    def test_default_spec(self) -> None:
        """
        With our default spec every capability is advertised, as C{True}.
        """
        caps = capabilities(load())
        self.assertEqual(set(caps), self.ALL)
        self.assertTrue(all(value is True for value in caps.values()))

    def test_plain_specs(self) -> None:
        """
        0-8, 0-9 and the plain 0-9-1 file have no C{basic.nack}, no
        C{confirm} class, no C{exchange.bind} and no C{connection.blocked}:
        those capabilities are left out.
        """
        for name in (
            "0-8/amqp0-8.stripped.xml",
            "0-9/amqp0-9.stripped.xml",
            "0-9-1/amqp0-9-1.stripped.xml",
        ):
            spec = reference_spec(name)
            for missing in ("basic.nack", "confirm.select", "connection.blocked"):
                self.assertNotIn(missing, spec.method_by_name, (name, missing))
            caps = capabilities(spec)
            self.assertEqual(set(caps), self.PLAIN, name)
            self.assertTrue(all(value is True for value in caps.values()), name)

    def test_rabbit_extended_spec(self) -> None:
        """
        Debian's RabbitMQ 0-9-1 file has confirms, C{basic.nack} and
        exchange bindings but no C{connection.blocked}.
        """
        caps = capabilities(reference_spec("0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"))
        self.assertEqual(set(caps), self.ALL - {"connection.blocked"})

    def test_sent_in_start_ok(self) -> None:
        """
        C{start-ok} carries the capabilities of the spec spoken: 0-8's lack
        C{basic.nack}, C{publisher_confirms} and C{connection.blocked}.
        """
        spec = reference_spec("0-8/amqp0-8.stripped.xml")
        conn = Connection(spec=spec, credentials=Credentials())
        parser = SentParser(spec)
        parser.feed(conn.data_to_send())
        conn.receive_data(FrameFactory(spec).start())
        [start_ok] = parser.methods_sent(conn.data_to_send())
        caps = start_ok.client_properties["capabilities"]
        self.assertEqual(caps, capabilities(spec))
        for missing in ("basic.nack", "publisher_confirms", "connection.blocked"):
            self.assertNotIn(missing, caps)


class BrokerExtensionsTests(SynchronousTestCase):
    """
    RabbitMQ sends C{basic.cancel} and C{basic.ack} to clients although the
    plain spec files list them as sent by clients only; the core accepts
    them on channels whatever the spec's chassis says.
    """

    SPECS = (
        "0-9-1/amqp0-9-1.stripped.xml",
        "0-9/amqp0-9.stripped.xml",
        "0-8/amqp0-8.stripped.xml",
    )

    def test_cancel_and_ack_accepted(self) -> None:
        """
        With each plain file (whose chassis for C{basic.cancel} and
        C{basic.ack} names only the server), a broker's C{basic.cancel} and
        C{basic.ack} on an open channel are reported as L{MethodReceived};
        nothing is sent and the connection stays open.
        """
        for name in self.SPECS:
            spec = reference_spec(name)
            for method in ("basic.cancel", "basic.ack"):
                self.assertEqual(spec.method(method).chassis, {"server"}, (name, method))
            conn, factory, parser = open_connection(spec=spec)
            ch = open_channel(conn, factory, parser)
            events = conn.receive_data(
                factory.method(ch, "basic.cancel", consumer_tag="ctag")
                + factory.method(ch, "basic.ack", delivery_tag=3, multiple=True)
            )
            self.assertEqual(
                events,
                [
                    MethodReceived(ch, conn.methods.Basic.Cancel(consumer_tag="ctag")),
                    MethodReceived(ch, conn.methods.Basic.Ack(delivery_tag=3, multiple=True)),
                ],
                name,
            )
            self.assertEqual(conn.data_to_send(), b"", name)
            self.assertEqual(conn.state, ConnectionState.OPEN, name)
            self.assertEqual(conn.channel_state(ch), ChannelState.OPEN, name)

    def test_other_client_methods_refused(self) -> None:
        """
        The exception is narrow: with the plain 0-9-1 file a broker's
        C{queue.declare} (sent by clients only) is still invalid (503).
        """
        conn, factory, parser = open_connection(spec=reference_spec(self.SPECS[0]))
        ch = open_channel(conn, factory, parser)
        exc = self.assertRaises(
            RemoteProtocolError, conn.receive_data, factory.method(ch, "queue.declare", queue="q")
        )
        self.assertEqual(exc.reply_code, 503)

    def test_our_cancel_still_answered(self) -> None:
        """
        With the plain 0-9-1 file the client may still send C{basic.cancel},
        and C{cancel-ok} is its reply.
        """
        conn, factory, parser = open_connection(spec=reference_spec(self.SPECS[0]))
        ch = open_channel(conn, factory, parser)
        conn.send_method(ch, conn.methods.Basic.Cancel(consumer_tag="ctag"))
        [sent] = parser.methods_sent(conn.data_to_send())
        self.assertEqual(sent.NAME, "basic.cancel")
        [event] = conn.receive_data(factory.method(ch, "basic.cancel-ok", consumer_tag="ctag"))
        self.assertIsInstance(event, ReplyReceived)
