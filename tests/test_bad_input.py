# -*- test-case-name: tests.test_bad_input -*-
"""
No input from the application ends a connection, and a broker's odd
handshake values are refused: each bad argument fails its call at once with
a typed error, nothing of it is sent, and the connection goes on.

Driven on the sans-IO core, and on the Twisted adapter over a
L{StringTransport}, with no socket.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import (
    Broker,
    FrameFactory,
    SentParser,
    open_broker,
    open_channel,
    open_connection,
)
from txamqp_next import errors
from txamqp_next._connection import MAX_SECURE_ROUNDS, Connection, ConnectionState
from txamqp_next._events import ConnectionClosed
from txamqp_next._params import Credentials


class CoreBadInputTests(SynchronousTestCase):
    """
    The core refuses bad values before anything is queued.
    """

    def setUp(self) -> None:
        self.conn, self.factory, self.parser = open_connection()
        self.ch = open_channel(self.conn, self.factory, self.parser)
        self.ms = self.conn.methods

    def publish(self, body: Any, **fields: Any) -> None:
        method = self.ms.make("basic.publish", (), {"routing_key": "q", **fields})
        self.conn.send_method(self.ch, method, self.conn.no_properties, body)

    def test_body_types(self) -> None:
        """
        A body that is not bytes, bytearray or memoryview is a C{TypeError}
        naming its type, and nothing is queued; the next publish goes out.
        """
        for body in ({"a": 1}, None, 12, [b"x"], "text"):
            with self.subTest(body=body):
                error = self.assertRaises(TypeError, self.publish, body)
                self.assertIn(type(body).__name__, str(error))
                self.assertEqual(self.conn.data_to_send(), b"")
        self.publish(bytearray(b"ok"))
        self.publish(memoryview(b"ok"))
        frames = self.parser.feed(self.conn.data_to_send())
        self.assertEqual([item for kind, _, item in frames if kind == 3], [b"ok", b"ok"])
        self.assertEqual(self.conn.state, ConnectionState.OPEN)

    def test_bits_strict(self) -> None:
        """
        A bit takes C{True}, C{False}, 1 or 0: C{"no"}, 2 and C{None} are a
        L{errors.LocalProtocolError} naming the field, and nothing is
        queued.
        """
        for value in ("no", 2, None, "True", 1.0):
            with self.subTest(value=value):
                error = self.assertRaises(
                    errors.LocalProtocolError, self.publish, b"x", mandatory=value
                )
                self.assertIn("mandatory", str(error))
                self.assertEqual(self.conn.data_to_send(), b"")
        for value in (True, False, 1, 0):
            self.publish(b"x", mandatory=value)
        methods = self.parser.methods_sent(self.conn.data_to_send())
        self.assertEqual([m.mandatory for m in methods], [True, False, True, False])

    def test_header_beyond_frame_max(self) -> None:
        """
        A content header larger than the negotiated C{frame_max} (a huge
        C{headers} table) is refused locally with 501, instead of being sent
        for the broker to close the connection over.
        """
        conn, factory, parser = open_connection(tune={"frame_max": 4096})
        ch = open_channel(conn, factory, parser)
        big = conn.methods.properties[60](headers={"k": "v" * 5000})
        publish = conn.methods.make("basic.publish", (), {"routing_key": "q"})
        for body in (b"", b"x", b"x" * 10000):
            with self.subTest(size=len(body)):
                error = self.assertRaises(
                    errors.LocalProtocolError, conn.send_method, ch, publish, big, body
                )
                self.assertEqual(error.reply_code, errors.FRAME_ERROR)
                self.assertIn("content header", str(error))
                self.assertEqual(conn.data_to_send(), b"")
        conn.send_method(ch, publish, conn.methods.properties[60](headers={"k": "v"}), b"x")
        self.assertTrue(conn.data_to_send())

    def test_method_beyond_frame_max(self) -> None:
        """
        A method frame larger than C{frame_max} (a huge C{arguments} table)
        is refused locally with 501 and changes no state.
        """
        conn, factory, parser = open_connection(tune={"frame_max": 4096})
        ch = open_channel(conn, factory, parser)
        declare = conn.methods.make(
            "queue.declare", (), {"queue": "q", "arguments": {"x": "y" * 5000}}
        )
        error = self.assertRaises(errors.LocalProtocolError, conn.send_method, ch, declare)
        self.assertEqual(error.reply_code, errors.FRAME_ERROR)
        self.assertEqual(conn.data_to_send(), b"")
        conn.send_method(ch, conn.methods.make("queue.declare", (), {"queue": "q"}))
        self.assertEqual(
            [m.NAME for m in parser.methods_sent(conn.data_to_send())], ["queue.declare"]
        )


class HandshakeLimitTests(SynchronousTestCase):
    """
    What the client refuses of a broker's handshake.
    """

    def connection(self) -> tuple[Connection, FrameFactory, SentParser]:
        conn = Connection(credentials=Credentials())
        factory, parser = FrameFactory(conn.spec), SentParser(conn.spec)
        parser.feed(conn.data_to_send())
        conn.receive_data(factory.start())
        parser.feed(conn.data_to_send())
        return conn, factory, parser

    def test_frame_max_below_minimum(self) -> None:
        """
        A C{tune} proposing a C{frame_max} below the spec's minimum (4096)
        is a L{errors.RemoteProtocolError}: the connection is closed, not
        tuned; C{0} (no limit) is accepted.
        """
        conn, factory, parser = self.connection()
        error = self.assertRaises(
            errors.RemoteProtocolError, conn.receive_data, factory.tune(frame_max=100)
        )
        self.assertIn("4096", str(error))
        self.assertEqual(conn.state, ConnectionState.CLOSED)
        self.assertNotIn(
            "connection.tune-ok", [m.NAME for m in parser.methods_sent(conn.data_to_send())]
        )
        conn, factory, parser = self.connection()
        conn.receive_data(factory.tune(frame_max=0))
        self.assertEqual(conn.frame_max, 131072)

    def test_secure_bounded(self) -> None:
        """
        C{connection.secure} is answered at most L{MAX_SECURE_ROUNDS} times;
        the next one ends the connection with L{errors.AuthenticationError}
        instead of answering for ever.
        """
        conn, factory, parser = self.connection()
        for _ in range(MAX_SECURE_ROUNDS):
            self.assertEqual(conn.receive_data(factory.method(0, "connection.secure")), [])
        sent = parser.methods_sent(conn.data_to_send())
        self.assertEqual([m.NAME for m in sent], ["connection.secure-ok"] * MAX_SECURE_ROUNDS)
        [closed] = conn.receive_data(factory.method(0, "connection.secure"))
        assert isinstance(closed, ConnectionClosed)
        self.assertIsInstance(closed.error, errors.AuthenticationError)
        self.assertEqual(conn.state, ConnectionState.CLOSED)


class AdapterBadInputTests(SynchronousTestCase):
    """
    Through the channel: bad arguments fail their call, the channel and the
    connection go on.
    """

    def setUp(self) -> None:
        self.broker = open_broker()
        self.channel = self.broker.open_channel()

    def assertGoesOn(self) -> None:
        self.assertIsNone(self.broker.client.closed)
        self.assertIsNone(self.channel.closed)
        d = self.channel.basic_publish(routing_key="q", body=b"fine")
        self.successResultOf(d)
        sent = [item for kind, _, item in self.broker.frames_sent() if kind == 3]
        self.assertEqual(sent[-1], b"fine")

    def test_body_types(self) -> None:
        """
        C{basic_publish} with a C{dict} (or C{None}, an C{int}) body raises
        C{TypeError} at once, also while publishing is paused (the publish
        is not held).
        """
        for body in ({"a": 1}, None, 3):
            with self.subTest(body=body):
                self.assertRaises(TypeError, self.channel.basic_publish, routing_key="q", body=body)
        self.broker.client.pauseProducing()
        self.assertRaises(TypeError, self.channel.basic_publish, routing_key="q", body={})
        self.assertEqual(self.broker.client._held_bytes, 0)
        self.broker.client.resumeProducing()
        self.assertGoesOn()

    def test_bits(self) -> None:
        """
        A bit given C{"no"} fails the publish with
        L{errors.LocalProtocolError}; an ack with C{multiple="yes"} too.
        """
        failure = self.failureResultOf(
            self.channel.basic_publish(routing_key="q", body=b"x", mandatory="no"),
            errors.LocalProtocolError,
        )
        self.assertIn("mandatory", str(failure.value))
        self.failureResultOf(
            self.channel.basic_ack(delivery_tag=1, multiple="yes"), errors.LocalProtocolError
        )
        self.assertEqual(self.broker.sent(), [])
        self.assertGoesOn()

    def test_header_beyond_frame_max(self) -> None:
        """
        A publish whose headers do not fit a frame fails with
        L{errors.LocalProtocolError} (501) and sends nothing.
        """
        broker = Broker()
        broker.send(broker.frames.start())
        broker.send(broker.frames.tune(frame_max=4096, heartbeat=0))
        broker.send(broker.frames.open_ok())
        broker.frames_sent()
        channel = broker.open_channel()
        failure = self.failureResultOf(
            channel.basic_publish(
                routing_key="q", body=b"x", properties={"headers": {"k": "v" * 5000}}
            ),
            errors.LocalProtocolError,
        )
        self.assertEqual(failure.value.reply_code, errors.FRAME_ERROR)
        self.assertEqual(broker.frames_sent(), [])
        self.assertIsNone(broker.client.closed)

    def test_wrong_types_in_fields(self) -> None:
        """
        A field of the wrong type (a queue name that is a C{dict}, a 300-byte
        short string) fails the call with L{errors.LocalProtocolError}.
        """
        for fields in ({"queue": {"a": 1}}, {"queue": "q" * 300}, {"queue": "q", "arguments": 3}):
            with self.subTest(fields=fields):
                self.failureResultOf(
                    self.channel.queue_declare(**fields), errors.LocalProtocolError
                )
        self.assertEqual(self.broker.sent(), [])
        self.assertGoesOn()
