# -*- test-case-name: tests.test_protocol -*-
"""
Tests for the Twisted adapter, L{txamqp_next.connection.AMQPConnection} and
L{txamqp_next.channel.Channel}, driven over a L{StringTransport} by a fake
broker made of frames, with a L{Clock} for time.

txAMQP's names on top of them (L{txamqp_next.protocol.AMQClient}, its
delegate and queues) are tested in L{tests.test_txamqp_compat}, with the
same L{Broker}.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.logger import formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import (
    PASSWORD,
    Broker,
    CapturedLog,
    RecordingTransport,
    TLSLikeTransport,
    open_broker,
)
from txamqp_next import _frames, errors
from txamqp_next._codec import decode_table
from txamqp_next._connection import Credentials
from txamqp_next._methods import Method
from txamqp_next.channel import Channel, Consumer, ConsumerCancelled
from txamqp_next.message import Message
from txamqp_next.queue import Closed


class HandshakeTests(SynchronousTestCase):
    """
    The handshake with credentials given up front, and without them
    (C{login} after connecting).
    """

    def test_open(self) -> None:
        """
        C{start}, C{tune} and C{open-ok} are answered in turn; C{when_open}
        fires with the client and C{server_properties} is the broker's.
        """
        broker = Broker(vhost="/v")
        d = broker.client.when_open()
        self.assertEqual(broker.transport.value(), b"AMQP\x00\x00\x09\x01")
        broker.frames_sent()
        broker.send(broker.frames.start())
        [start_ok] = broker.sent()
        self.assertEqual(start_ok.NAME, "connection.start-ok")
        self.assertEqual(start_ok.response, b"\0guest\0guest")
        broker.send(broker.frames.tune(heartbeat=0))
        self.assertEqual([m.NAME for m in broker.sent()], ["connection.tune-ok", "connection.open"])
        self.assertNoResult(d)
        broker.send(broker.frames.open_ok())
        self.assertIs(self.successResultOf(d), broker.client)
        self.assertEqual(broker.client.server_properties["product"], "RabbitMQ")
        self.assertIs(self.successResultOf(broker.client.when_open()), broker.client)

    def test_tcp_no_delay(self) -> None:
        """
        On a TCP transport (or a TLS one, which passes the call on), the
        connection turns Nagle's algorithm off as it connects, so a small
        frame written behind another is not held for the broker's delayed
        ACK; a transport without the option is left alone.
        """

        class TCPLike(RecordingTransport):
            def __init__(self) -> None:
                super().__init__()
                self.no_delay: list[bool] = []

            def setTcpNoDelay(self, enabled: bool) -> None:
                self.no_delay.append(enabled)

        transport = TCPLike()
        Broker(transport=transport)
        self.assertEqual(transport.no_delay, [True])
        broker = Broker()
        self.assertFalse(hasattr(broker.transport, "setTcpNoDelay"))
        self.assertEqual(broker.transport.value(), b"AMQP\x00\x00\x09\x01")

    def test_tcp_no_delay_refused(self) -> None:
        """
        A transport that has C{setTcpNoDelay} but cannot set the option
        (its socket is not TCP, or is gone) does not stop the connection:
        the protocol header still goes out.
        """

        class Refusing(RecordingTransport):
            def setTcpNoDelay(self, enabled: bool) -> None:
                raise OSError(95, "Operation not supported")

        transport = Refusing()
        Broker(transport=transport)
        self.assertEqual(transport.value()[:8], b"AMQP\x00\x00\x09\x01")

    def test_login_after_start(self) -> None:
        """
        Without credentials only the protocol header goes out and C{start}
        is left unanswered; C{login} sends C{start-ok} with the credentials'
        mechanism (PLAIN by default) and its L{Deferred} fires with the
        connection on C{open-ok}.
        """
        broker = Broker(credentials=None)
        self.assertEqual(broker.transport.value(), b"AMQP\x00\x00\x09\x01")
        broker.frames_sent()
        broker.send(broker.frames.start())
        self.assertEqual(broker.transport.value(), b"")
        d = broker.client.login(Credentials("guest", PASSWORD))
        [start_ok] = broker.sent()
        self.assertEqual(start_ok.NAME, "connection.start-ok")
        self.assertEqual(start_ok.mechanism, "PLAIN")
        self.assertEqual(start_ok.response, b"\0guest\0" + PASSWORD.encode())
        self.assertNotIn(PASSWORD, repr(start_ok))
        broker.send(broker.frames.tune(heartbeat=0))
        self.assertNoResult(d)
        broker.send(broker.frames.open_ok())
        self.assertIs(self.successResultOf(d), broker.client)

    def test_login_before_start(self) -> None:
        """
        C{login} may be called before C{start} arrives: C{start-ok} goes
        out, with the credentials' mechanism (here AMQPLAIN, whose response
        is a field table), when C{start} comes.
        """
        broker = Broker(credentials=None)
        broker.frames_sent()
        d = broker.client.login(Credentials("guest", "guest", mechanism="AMQPLAIN"))
        self.assertEqual(broker.transport.value(), b"")
        broker.send(broker.frames.start())
        [start_ok] = broker.sent()
        self.assertEqual(start_ok.mechanism, "AMQPLAIN")
        response = start_ok.response
        table, _ = decode_table(len(response).to_bytes(4, "big") + response, 0)
        self.assertEqual(table, {"LOGIN": "guest", "PASSWORD": "guest"})
        broker.send(broker.frames.tune(heartbeat=0))
        broker.send(broker.frames.open_ok())
        self.assertIs(self.successResultOf(d), broker.client)

    def test_login_twice(self) -> None:
        """
        C{login} once the handshake went on (here: a connection made with
        credentials and open) fails with L{errors.LocalProtocolError}
        naming the call, and sends nothing.
        """
        broker = open_broker()
        failure = self.failureResultOf(
            broker.client.login(Credentials("guest", "guest")), errors.LocalProtocolError
        )
        self.assertIn("authenticate", str(failure.value))
        self.assertEqual(broker.sent(), [])

    def test_login_mechanism_not_offered(self) -> None:
        """
        C{login} with a mechanism the broker does not offer fails with
        L{errors.AuthenticationError} naming the offered mechanisms, and the
        transport is dropped.
        """
        broker = Broker(credentials=None)
        broker.send(broker.frames.start(mechanisms=b"PLAIN AMQPLAIN"))
        d = broker.client.login(Credentials(mechanism="EXTERNAL"))
        failure = self.failureResultOf(d, errors.AuthenticationError)
        self.assertIn("EXTERNAL", str(failure.value))
        self.assertIn("AMQPLAIN", str(failure.value))
        self.assertTrue(broker.transport.disconnecting)

    def test_refused_credentials(self) -> None:
        """
        A C{connection.close} 403 answering C{start-ok} fails C{when_open}
        with L{errors.AuthenticationError}; close-ok is sent first and the
        transport dropped.
        """
        broker = Broker()
        d = broker.client.when_open()
        broker.send(broker.frames.start())
        broker.frames_sent()
        broker.reply(
            "connection.close", 0, reply_code=403, reply_text="ACCESS_REFUSED - Login was refused"
        )
        failure = self.failureResultOf(d, errors.AuthenticationError)
        self.assertEqual(failure.value.reply_code, 403)
        self.assertIn("Login was refused", str(failure.value))
        self.assertEqual(broker.sent_names(), [(0, "connection.close-ok")])
        self.assertTrue(broker.transport.disconnecting)

    def test_lost_after_start_ok(self) -> None:
        """
        RabbitMQ may just hang up on bad credentials: a transport lost after
        C{start-ok} fails C{when_open} with L{errors.AuthenticationError}
        that says the credentials were probably refused.
        """
        broker = Broker()
        d = broker.client.when_open()
        broker.send(broker.frames.start())
        broker.lose(ConnectionLost)
        failure = self.failureResultOf(d, errors.AuthenticationError)
        self.assertIn("credentials", str(failure.value))

    def test_lost_before_start(self) -> None:
        """
        A transport lost before C{start} is a plain L{errors.ConnectionClosed},
        not an authentication failure.
        """
        broker = Broker()
        d = broker.client.when_open()
        broker.lose(ConnectionLost)
        failure = self.failureResultOf(d, errors.ConnectionClosed)
        self.assertNotIsInstance(failure.value, errors.AuthenticationError)
        self.assertIn("connection lost", str(failure.value))

    def test_missing_vhost(self) -> None:
        """
        A 530 answering C{open} fails C{when_open} with L{errors.NotAllowed}.
        """
        broker = Broker(vhost="/nope")
        d = broker.client.when_open()
        broker.send(broker.frames.start())
        broker.send(broker.frames.tune(heartbeat=0))
        broker.reply(
            "connection.close", 0, reply_code=530, reply_text="NOT_ALLOWED - vhost /nope not found"
        )
        failure = self.failureResultOf(d, errors.NotAllowed)
        self.assertEqual(failure.value.reply_code, 530)
        self.assertTrue(broker.transport.disconnecting)
        self.failureResultOf(broker.client.when_open(), errors.NotAllowed)

    def test_bad_frame(self) -> None:
        """
        A frame that breaks the protocol fails everything outstanding with
        the L{errors.RemoteProtocolError}, writes C{connection.close} with
        its reply code, and drops the transport.  Later calls on any channel
        fail with it, C{new_channel} raises it and C{open_channel} fails
        with it.
        """
        broker = open_broker()
        channel = broker.open_channel()
        declare = channel.queue_declare(queue="q")
        other = broker.client.new_channel()
        broker.frames_sent()
        # a method frame whose frame-end octet is wrong
        frame = bytearray(broker.frames.method(1, "queue.declare-ok", queue="q"))
        frame[-1] = 0
        broker.send(bytes(frame))
        failure = self.failureResultOf(declare, errors.RemoteProtocolError)
        self.assertEqual(failure.value.reply_code, errors.FRAME_ERROR)
        [close] = broker.sent()
        self.assertEqual(close.NAME, "connection.close")
        self.assertEqual(close.reply_code, errors.FRAME_ERROR)
        self.assertTrue(broker.transport.disconnecting)
        self.assertEqual(broker.transport.written_after_lose, [])
        self.assertIs(broker.client.closed, failure.value)
        self.failureResultOf(other.queue_declare(queue="q"), errors.RemoteProtocolError)
        self.assertRaises(errors.RemoteProtocolError, broker.client.new_channel)
        self.failureResultOf(broker.client.open_channel(), errors.RemoteProtocolError)

    def test_bad_frame_during_handshake(self) -> None:
        """
        A protocol fault before C{open-ok} fails C{when_open}.
        """
        broker = Broker()
        d = broker.client.when_open()
        broker.send(broker.frames.start())
        broker.send(broker.frames.method(1, "channel.open-ok"))
        self.failureResultOf(d, errors.RemoteProtocolError)
        self.assertTrue(broker.transport.disconnecting)


class ChannelTests(SynchronousTestCase):
    """
    Getting and opening channels, and calling methods on them.
    """

    def setUp(self) -> None:
        self.broker = open_broker()
        self.client = self.broker.client

    def test_new_channel_ids(self) -> None:
        """
        C{new_channel()} picks the lowest free id, C{new_channel(id)} takes
        the id given, and each is a new unopened L{Channel}; an id in use is
        refused with L{errors.LocalProtocolError}.  Nothing is sent.
        """
        one = self.client.new_channel()
        self.assertIsInstance(one, Channel)
        self.assertEqual(one.id, 1)
        self.assertFalse(one.is_open)
        two = self.client.new_channel()
        self.assertEqual(two.id, 2)
        self.assertIsNot(two, one)
        five = self.client.new_channel(5)
        self.assertEqual(five.id, 5)
        self.assertEqual(self.client.new_channel().id, 3)
        exc = self.assertRaises(errors.LocalProtocolError, self.client.new_channel, 1)
        self.assertIn("in use", str(exc))
        self.assertEqual(self.broker.sent(), [])

    def test_reply_handler_error_fails_its_call(self) -> None:
        """
        A reply handler of L{Channel._call} that raises fails its call's
        L{Deferred} with the error; the reply is still consumed, and the
        channel and the calls queued behind go on.
        """
        channel = self.broker.open_channel()

        def broken(channel: Channel, reply: Any, arg: Any) -> Any:
            raise ValueError(f"cannot use {reply.NAME} with {arg}")

        failing = channel._call(
            channel.methods.make("queue.declare", (), {"queue": "a"}), then=broken, arg=7
        )
        after = channel.queue_declare(queue="b")
        self.broker.frames_sent()
        self.broker.reply("queue.declare-ok", queue="a")
        self.broker.reply("queue.declare-ok", queue="b")
        failure = self.failureResultOf(failing, ValueError)
        self.assertEqual(str(failure.value), "cannot use queue.declare-ok with 7")
        self.assertEqual(self.successResultOf(after).queue, "b")
        self.assertTrue(channel.is_open)

    def test_closed_id_reused(self) -> None:
        """
        Once a channel is closed its id is free again, with a new object.
        """
        channel = self.broker.open_channel()
        d = channel.channel_close()
        self.broker.frames_sent()
        self.broker.reply("channel.close-ok")
        self.successResultOf(d)
        again = self.client.new_channel()
        self.assertEqual(again.id, 1)
        self.assertIsNot(again, channel)

    def test_reopen_in_close_callback(self) -> None:
        """
        A channel opened from the callback of another's close gets the freed
        id and stays open: the close ends only the channel it was for.
        """
        channel = self.broker.open_channel()
        reopened: list[Any] = []
        channel.channel_close().addCallback(lambda _: self.client.open_channel()).addBoth(
            reopened.append
        )
        self.broker.frames_sent()
        self.broker.reply("channel.close-ok")
        self.assertEqual(self.broker.sent_names(), [(1, "channel.open")])
        self.broker.reply("channel.open-ok")
        [again] = reopened
        self.assertIsInstance(again, Channel)
        self.assertIsNot(again, channel)
        self.assertTrue(again.is_open)
        self.assertIsNotNone(channel.closed)

    def test_free_id_after_channel_fault(self) -> None:
        """
        After the client closed a channel because of a fault (a message over
        C{max_message_size}), C{open_channel} does not pick that id while the
        broker's C{close-ok} is still due: it opens the next free one.
        """
        broker = open_broker(max_message_size=10)
        channel = broker.open_channel()
        consumer = self.successResultOf(
            channel.basic_consume(queue="q", consumer_tag="c", no_wait=True)
        )
        broker.frames_sent()
        broker.deliver("c", 1, b"x" * 20)
        self.assertEqual(broker.sent_names(), [(1, "channel.close")])
        self.assertEqual(channel.closed.reply_code, errors.CONTENT_TOO_LARGE)
        self.assertIsNotNone(consumer.cancelled)
        d = broker.client.open_channel()
        self.assertEqual(broker.sent_names(), [(2, "channel.open")])
        broker.reply("channel.open-ok", 2)
        self.assertEqual(self.successResultOf(d).id, 2)

    def test_open_channel(self) -> None:
        """
        C{open_channel} sends C{channel.open} and fires with the open
        L{Channel} on C{open-ok}.
        """
        d = self.client.open_channel()
        self.assertEqual(self.broker.sent_names(), [(1, "channel.open")])
        self.assertNoResult(d)
        self.broker.reply("channel.open-ok")
        channel = self.successResultOf(d)
        self.assertIsInstance(channel, Channel)
        self.assertTrue(channel.is_open)
        self.assertEqual(channel.id, 1)
        self.assertIs(self.client._channels[1], channel)
        self.assertIn("open", repr(channel))

    def test_spec_call_fires_with_reply(self) -> None:
        """
        A synchronous method called by its Python name sends the method and
        fires with the broker's reply method.
        """
        channel = self.broker.open_channel()
        d = channel.queue_declare(queue="q", durable=True)
        [declare] = self.broker.sent()
        self.assertEqual(declare.NAME, "queue.declare")
        self.assertEqual((declare.queue, declare.durable), ("q", True))
        self.assertNoResult(d)
        self.broker.reply("queue.declare-ok", queue="q", message_count=3, consumer_count=1)
        ok = self.successResultOf(d)
        self.assertEqual(ok.NAME, "queue.declare-ok")
        self.assertEqual((ok.queue, ok.message_count, ok.consumer_count), ("q", 3, 1))

    def test_non_reply_method(self) -> None:
        """
        A method without a reply (C{basic.ack}) fires with C{None} at once.
        """
        channel = self.broker.open_channel()
        self.assertIsNone(self.successResultOf(channel.basic_ack(delivery_tag=5)))
        [ack] = self.broker.sent()
        self.assertEqual((ack.NAME, ack.delivery_tag), ("basic.ack", 5))

    def test_no_wait(self) -> None:
        """
        C{no_wait=True} makes a synchronous method fire with C{None} at once;
        a following call is sent without waiting.
        """
        channel = self.broker.open_channel()
        self.assertIsNone(self.successResultOf(channel.queue_declare(queue="q", no_wait=True)))
        d = channel.queue_bind(queue="q", exchange="amq.direct", routing_key="k")
        self.assertEqual([m.NAME for m in self.broker.sent()], ["queue.declare", "queue.bind"])
        self.broker.reply("queue.bind-ok")
        self.assertEqual(self.successResultOf(d).NAME, "queue.bind-ok")

    def test_unknown_method(self) -> None:
        """
        An attribute naming no method is an L{AttributeError}; so is a
        private name.
        """
        channel = self.broker.open_channel()
        exc = self.assertRaises(AttributeError, getattr, channel, "queue_frobnicate")
        self.assertIn("queue_frobnicate", str(exc))
        self.assertRaises(AttributeError, getattr, channel, "_private")
        self.assertFalse(hasattr(channel, "nonsense"))

    def test_wrong_keyword(self) -> None:
        """
        A keyword the method does not have is a L{TypeError} naming it, and
        nothing is sent.
        """
        channel = self.broker.open_channel()
        exc = self.assertRaises(TypeError, channel.queue_declare, queueue="q")
        self.assertIn("queueue", str(exc))
        self.assertEqual(self.broker.sent(), [])

    def test_calls_answered_in_order(self) -> None:
        """
        Several synchronous calls on one channel go out one at a time and
        each fires with its own reply, in order.
        """
        channel = self.broker.open_channel()
        first = channel.queue_declare(queue="a")
        second = channel.queue_declare(queue="b")
        third = channel.exchange_declare(exchange="x", type="direct")
        self.assertEqual([m.queue for m in self.broker.sent()], ["a"])
        self.broker.reply("queue.declare-ok", queue="a", message_count=0, consumer_count=0)
        self.assertEqual(self.successResultOf(first).queue, "a")
        self.assertNoResult(second)
        self.assertEqual([m.queue for m in self.broker.sent()], ["b"])
        self.broker.reply("queue.declare-ok", queue="b", message_count=0, consumer_count=0)
        self.assertEqual(self.successResultOf(second).queue, "b")
        self.assertEqual([m.NAME for m in self.broker.sent()], ["exchange.declare"])
        self.broker.reply("exchange.declare-ok")
        self.assertEqual(self.successResultOf(third).NAME, "exchange.declare-ok")

    def test_call_on_unopened_channel(self) -> None:
        """
        A call on a channel that was never opened fails with
        L{errors.LocalProtocolError} and sends nothing.
        """
        channel = self.client.new_channel()
        self.failureResultOf(channel.queue_declare(queue="q"), errors.LocalProtocolError)
        self.assertEqual(self.broker.sent(), [])

    def test_broker_closes_channel(self) -> None:
        """
        A C{channel.close} from the broker fails the outstanding calls with
        the typed error (L{errors.NotFound}), is answered with C{close-ok},
        and later calls fail at once; other channels go on working.
        """
        one = self.broker.open_channel(1)
        two = self.broker.open_channel(2)
        declare = one.queue_declare(queue="missing", passive=True)
        queued = one.queue_bind(queue="missing", exchange="amq.direct")
        self.broker.frames_sent()
        self.broker.reply(
            "channel.close",
            1,
            reply_code=404,
            reply_text="NOT_FOUND - no queue 'missing'",
            class_id=50,
            method_id=10,
        )
        failure = self.failureResultOf(declare, errors.NotFound)
        self.assertEqual(failure.value.reply_code, 404)
        self.assertEqual((failure.value.class_id, failure.value.method_id), (50, 10))
        self.failureResultOf(queued, errors.NotFound)
        self.assertEqual(self.broker.sent_names(), [(1, "channel.close-ok")])
        self.failureResultOf(one.queue_declare(queue="q"), errors.NotFound)
        self.failureResultOf(one.basic_ack(delivery_tag=1), errors.NotFound)
        self.assertEqual(self.broker.sent(), [])
        self.assertIsInstance(one.closed, errors.NotFound)
        self.assertNotIn(1, self.client._channels)
        other = two.queue_declare(queue="q")
        self.broker.reply("queue.declare-ok", 2, queue="q", message_count=0, consumer_count=0)
        self.assertEqual(self.successResultOf(other).queue, "q")

    def test_channel_close_with_calls_outstanding(self) -> None:
        """
        C{channel_close} sends C{channel.close} at once even with calls
        outstanding; it fires on C{close-ok}, and the outstanding calls fail
        with L{errors.ChannelClosed} (code 200, carrying the close we sent), as
        later calls do.
        """
        channel = self.broker.open_channel()
        declare = channel.queue_declare(queue="a")
        queued = channel.queue_declare(queue="b")
        self.broker.frames_sent()
        d = channel.channel_close()
        [close] = self.broker.sent()
        self.assertEqual((close.NAME, close.reply_code), ("channel.close", 200))
        self.assertNoResult(d)
        # a reply to the first call, sent before the broker saw the close,
        # is discarded
        self.broker.reply("queue.declare-ok", queue="a", message_count=0, consumer_count=0)
        self.assertNoResult(declare)
        self.broker.reply("channel.close-ok")
        self.assertEqual(self.successResultOf(d).NAME, "channel.close-ok")
        failure = self.failureResultOf(declare, errors.ChannelClosed)
        self.assertEqual(failure.value.reply_code, 200)
        self.assertIn("closed by the client", failure.value.reply_text)
        self.assertEqual(failure.value.method, close)
        self.failureResultOf(queued, errors.ChannelClosed)
        self.assertEqual(self.broker.sent(), [])
        self.assertIsNone(self.successResultOf(channel.channel_close()))
        self.failureResultOf(channel.queue_declare(queue="c"), errors.ChannelClosed)

    def test_channel_close_long_reason(self) -> None:
        """
        A reason longer than a short string still closes the channel, with
        the text cut to 255 bytes, instead of leaving it half closed.
        """
        channel = self.broker.open_channel()
        d = channel.close("x" * 300)
        self.assertNoResult(d)
        [close] = self.broker.sent()
        self.assertEqual(close.NAME, "channel.close")
        self.assertLessEqual(len(close.reply_text.encode()), 255)
        self.broker.reply("channel.close-ok")
        self.successResultOf(d)
        self.assertIsNotNone(channel.closed)

    def test_channel_close_twice(self) -> None:
        """
        Closing a closing channel sends one C{channel.close}; both calls fire
        on the C{close-ok}.
        """
        channel = self.broker.open_channel()
        first = channel.channel_close()
        second = channel.close("done")
        self.assertEqual(self.broker.sent_names(), [(1, "channel.close")])
        self.broker.reply("channel.close-ok")
        self.successResultOf(first)
        self.successResultOf(second)

    def test_broker_close_while_closing(self) -> None:
        """
        The broker closing a channel we are closing fires our close and
        fails outstanding calls with its error.
        """
        channel = self.broker.open_channel()
        d = channel.channel_close()
        self.broker.frames_sent()
        self.broker.reply("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED")
        self.successResultOf(d)
        self.assertIsInstance(channel.closed, errors.PreconditionFailed)
        self.assertEqual(self.broker.sent_names(), [(1, "channel.close-ok")])

    def test_cancel_pending_call(self) -> None:
        """
        Cancelling a pending call fails it with L{CancelledError} and closes
        the channel, since its reply could no longer be matched.
        """
        channel = self.broker.open_channel()
        d = channel.queue_declare(queue="q")
        self.broker.frames_sent()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        [close] = self.broker.sent()
        self.assertEqual(close.NAME, "channel.close")
        self.assertIn("cancelled", close.reply_text)
        self.broker.reply("queue.declare-ok", queue="q", message_count=0, consumer_count=0)
        self.broker.reply("channel.close-ok")
        self.assertIsInstance(channel.closed, errors.ChannelClosed)
        self.assertNotIn(1, self.client._channels)


class ConnectionCloseTests(SynchronousTestCase):
    """
    The connection ends: closed by the broker, lost, or closed by us.
    """

    def test_broker_closes_connection(self) -> None:
        """
        A C{connection.close} from the broker fails every outstanding
        L{Deferred} on every channel with the typed error
        (L{errors.ConnectionForced}); C{close-ok} is written before the
        transport is dropped.
        """
        broker = open_broker()
        one = broker.open_channel(1)
        two = broker.open_channel(2)
        d1 = one.queue_declare(queue="a")
        d2 = two.exchange_declare(exchange="x", type="fanout")
        broker.frames_sent()
        broker.reply(
            "connection.close", 0, reply_code=320, reply_text="CONNECTION_FORCED - shutdown"
        )
        f1 = self.failureResultOf(d1, errors.ConnectionForced)
        self.assertEqual(f1.value.reply_code, 320)
        self.failureResultOf(d2, errors.ConnectionForced)
        self.assertEqual(broker.transport.written_after_lose, [])
        self.assertEqual(broker.sent_names(), [(0, "connection.close-ok")])
        self.assertTrue(broker.transport.disconnecting)
        self.failureResultOf(one.queue_declare(queue="b"), errors.ConnectionForced)
        self.failureResultOf(broker.client.open_channel(), errors.ConnectionForced)

    def test_close_ok_written_before_lose(self) -> None:
        """
        The C{close-ok} answering the broker's C{connection.close} is written
        before C{loseConnection}: a TLS transport drops whatever is written
        after it, and the broker would log an abrupt disconnect.
        """
        broker = open_broker()
        broker.reply("connection.close", 0, reply_code=320, reply_text="CONNECTION_FORCED")
        self.assertTrue(broker.transport.disconnecting)
        self.assertEqual(broker.transport.written_after_lose, [])
        self.assertEqual(broker.sent_names(), [(0, "connection.close-ok")])

    def test_connection_lost(self) -> None:
        """
        C{connectionLost} fails every outstanding L{Deferred} at once with
        L{errors.ConnectionClosed}; later calls fail at once too.
        """
        broker = open_broker()
        one = broker.open_channel(1)
        opening = broker.client.open_channel(2)
        d1 = one.queue_declare(queue="a")
        d2 = one.queue_declare(queue="b")
        broker.lose(ConnectionLost)
        for d in (opening, d1, d2):
            failure = self.failureResultOf(d, errors.ConnectionClosed)
            self.assertIn("connection lost", str(failure.value))
        self.failureResultOf(one.queue_declare(queue="c"), errors.ConnectionClosed)
        self.failureResultOf(one.basic_publish(body=b"x"), errors.ConnectionClosed)
        self.assertRaises(errors.ConnectionClosed, broker.client.new_channel)
        self.failureResultOf(broker.client.open_channel(), errors.ConnectionClosed)
        self.failureResultOf(broker.client.when_open(), errors.ConnectionClosed)
        self.assertEqual(broker.client._channels, {})

    def test_close(self) -> None:
        """
        C{close} sends C{connection.close} and fires once C{close-ok} came and
        the transport is gone.
        """
        broker = open_broker()
        d = broker.client.close("bye")
        [close] = broker.sent()
        self.assertEqual(
            (close.NAME, close.reply_code, close.reply_text), ("connection.close", 200, "bye")
        )
        self.assertNoResult(d)
        broker.reply("connection.close-ok", 0)
        self.assertTrue(broker.transport.disconnecting)
        self.assertNoResult(d)
        broker.lose()
        self.assertIsNone(self.successResultOf(d))
        self.assertIsInstance(broker.client.closed, errors.ConnectionClosed)
        self.assertEqual(broker.client.closed.reply_code, 200)
        self.assertEqual(broker.clock.getDelayedCalls(), [])

    def test_close_shuts_down_tls(self) -> None:
        """
        After C{close-ok} the client stops being its transport's producer,
        so a TLS transport really shuts down instead of waiting for the
        close timeout.
        """
        transport = TLSLikeTransport()
        broker = Broker(transport)
        broker.handshake()
        self.assertIs(transport.producer, broker.client)
        broker.client.close()
        broker.reply("connection.close-ok", 0)
        self.assertTrue(transport.shut_down)
        self.assertIsNone(transport.producer)

    def test_broker_close_shuts_down_tls(self) -> None:
        """
        A close from the broker, once answered, shuts a TLS transport down.
        """
        transport = TLSLikeTransport()
        broker = Broker(transport)
        broker.handshake()
        broker.reply("connection.close", 0, reply_code=320, reply_text="shutdown")
        self.assertTrue(transport.shut_down)

    def test_close_long_reason(self) -> None:
        """
        A reason longer than a short string (255 bytes) still closes the
        connection: C{close} returns a L{Deferred}, C{connection.close} goes
        out with the text cut to fit, and the L{Deferred} fires once the
        broker agreed and the transport is gone.
        """
        broker = open_broker()
        d = broker.client.close("\u00e9" * 200)
        [close] = broker.sent()
        self.assertEqual(close.NAME, "connection.close")
        self.assertLessEqual(len(close.reply_text.encode()), 255)
        broker.reply("connection.close-ok", 0)
        broker.lose()
        self.assertIsNone(self.successResultOf(d))

    def test_close_fails_outstanding(self) -> None:
        """
        Calls outstanding when the client closes fail with
        L{errors.ConnectionClosed} once the broker agreed.
        """
        broker = open_broker()
        channel = broker.open_channel()
        declare = channel.queue_declare(queue="a")
        broker.client.close()
        broker.reply("connection.close-ok", 0)
        self.failureResultOf(declare, errors.ConnectionClosed)

    def test_close_timeout(self) -> None:
        """
        When the broker never answers C{connection.close}, the transport is
        aborted after C{close_timeout} seconds of the clock.
        """
        broker = open_broker(close_timeout=5)
        d = broker.client.close()
        broker.clock.advance(4.9)
        self.assertFalse(broker.transport.aborted)
        broker.clock.advance(0.2)
        self.assertTrue(broker.transport.aborted)
        self.assertNoResult(d)
        broker.lose(ConnectionLost)
        self.successResultOf(d)

    def test_close_within(self) -> None:
        """
        C{within} overrides C{close_timeout}.
        """
        broker = open_broker(close_timeout=30)
        broker.client.close(within=1)
        broker.clock.advance(1)
        self.assertTrue(broker.transport.aborted)

    def test_close_twice(self) -> None:
        """
        A second C{close} sends nothing more; both fire when the transport is
        gone.
        """
        broker = open_broker()
        first = broker.client.close()
        second = broker.client.close()
        self.assertEqual(broker.sent_names(), [(0, "connection.close")])
        broker.reply("connection.close-ok", 0)
        broker.lose()
        self.successResultOf(first)
        self.successResultOf(second)

    def test_close_before_open(self) -> None:
        """
        Closing before the broker tuned us drops the transport at once and
        fails C{when_open}.
        """
        broker = Broker()
        opening = broker.client.when_open()
        d = broker.client.close()
        self.assertTrue(broker.transport.disconnecting)
        broker.lose()
        self.successResultOf(d)
        self.failureResultOf(opening, errors.ConnectionClosed)

    def test_close_after_lost(self) -> None:
        """
        C{close} and C{when_closed} after the transport is gone fire at once.
        """
        broker = open_broker()
        broker.lose(ConnectionLost)
        self.assertIsNone(self.successResultOf(broker.client.when_closed()))
        self.assertIsNone(self.successResultOf(broker.client.close()))


class HeartbeatTests(SynchronousTestCase):
    """
    Heartbeats are sent on the clock, and a silent broker is given up on.
    """

    def heartbeats(self, broker: Broker) -> int:
        return sum(1 for kind, _, _ in broker.frames_sent() if kind == _frames.FRAME_HEARTBEAT)

    def test_sends_heartbeat(self) -> None:
        """
        With a heartbeat of 10 s and nothing else sent, a heartbeat frame goes
        out once 10 s have passed.
        """
        broker = Broker()
        broker.handshake(heartbeat=10)
        broker.clock.advance(5)
        self.assertEqual(self.heartbeats(broker), 0)
        broker.reply("connection.blocked", 0, reason="x")  # broker traffic
        broker.clock.advance(5)
        self.assertEqual(self.heartbeats(broker), 1)
        self.assertFalse(broker.transport.disconnecting)

    def test_negotiated(self) -> None:
        """
        The tune-ok carries the negotiated heartbeat.
        """
        broker = Broker(heartbeat=30)
        broker.send(broker.frames.start())
        broker.frames_sent()
        broker.send(broker.frames.tune(heartbeat=10))
        tune_ok = broker.sent()[0]
        self.assertEqual(tune_ok.heartbeat, 10)

    def test_silent_broker(self) -> None:
        """
        Two heartbeat intervals without a byte from the broker fail
        everything with L{errors.HeartbeatTimeout} and drop the transport.
        Silence is sampled every half interval, so it is noticed between
        20 and 25 seconds after the last byte.
        """
        broker = Broker()
        broker.handshake(heartbeat=10)
        channel = broker.open_channel()
        declare = channel.queue_declare(queue="q")
        # a second at a time, as a real clock moves
        broker.clock.pump([1] * 19)
        self.assertNoResult(declare)
        self.assertFalse(broker.transport.disconnecting)
        broker.clock.pump([1] * 6)
        failure = self.failureResultOf(declare, errors.HeartbeatTimeout)
        self.assertIn("heartbeat 10s", str(failure.value))
        self.assertTrue(broker.transport.disconnecting)
        self.failureResultOf(broker.client.when_open(), errors.HeartbeatTimeout)
        broker.lose(ConnectionLost)
        self.assertIsInstance(broker.client.closed, errors.HeartbeatTimeout)
        self.assertEqual(broker.clock.getDelayedCalls(), [])

    def test_traffic_keeps_alive(self) -> None:
        """
        Heartbeats from the broker keep the connection alive.
        """
        broker = Broker()
        broker.handshake(heartbeat=10)
        for _ in range(10):
            broker.clock.advance(5)
            broker.send(_frames.HEARTBEAT)
        self.assertFalse(broker.transport.disconnecting)
        self.assertIsNone(broker.client.closed)

    def test_no_heartbeat(self) -> None:
        """
        With heartbeats off nothing is scheduled.
        """
        broker = open_broker()
        self.assertEqual(broker.clock.getDelayedCalls(), [])


class DeliveryTests(SynchronousTestCase):
    """
    Consumers, C{basic.get}, returned messages and acknowledgements.
    """

    def setUp(self) -> None:
        self.broker = open_broker()
        self.client = self.broker.client
        self.channel = self.broker.open_channel()

    def consume(self, tag: str = "ctag", **kwargs: Any) -> Consumer:
        d = self.channel.basic_consume(queue="q", **kwargs)
        [consume] = self.broker.sent()
        self.assertEqual(consume.NAME, "basic.consume")
        self.broker.reply("basic.consume-ok", consumer_tag=tag)
        consumer = self.successResultOf(d)
        self.assertIsInstance(consumer, Consumer)
        self.assertEqual(consumer.consumer_tag, tag)
        return consumer

    def test_callback(self) -> None:
        """
        A consumer's callback gets each delivery as a L{Message}: bytes body,
        properties, and the method's fields as attributes.
        """
        received: list[Message] = []
        self.consume(callback=received.append)
        self.broker.deliver(
            "ctag", 7, b"hello", properties={"content_type": "text/plain", "headers": {"a": 1}}
        )
        self.broker.deliver("ctag", 8, b"")
        first, second = received
        self.assertEqual(first.body, b"hello")
        self.assertEqual(first.delivery_tag, 7)
        self.assertEqual(first.routing_key, "rk")
        self.assertEqual(first.consumer_tag, "ctag")
        self.assertIs(first.redelivered, False)
        self.assertEqual(first.properties.content_type, "text/plain")
        self.assertEqual(first.headers, {"a": 1})
        self.assertIs(first.channel, self.channel)
        self.assertEqual((second.body, second.delivery_tag), (b"", 8))
        self.assertEqual(second.headers, {})

    def test_ack_as_the_broker_closes(self) -> None:
        """
        An ack made for a delivery that came in the same read as the
        broker's C{connection.close} fails with the broker's error
        (L{errors.ConnectionForced}), not as a misuse of the connection.
        """
        acks: list[Deferred[Any]] = []
        self.consume(callback=lambda message: acks.append(message.ack()))
        self.broker.send(
            self.broker.frames.content(
                1,
                "basic.deliver",
                b"last",
                consumer_tag="ctag",
                delivery_tag=3,
                redelivered=False,
                exchange="",
                routing_key="q",
            )
            + self.broker.frames.method(
                0,
                "connection.close",
                reply_code=320,
                reply_text="CONNECTION_FORCED - shutdown",
                class_id=0,
                method_id=0,
            )
        )
        [ack] = acks
        self.failureResultOf(ack, errors.ConnectionForced)

    def test_queue(self) -> None:
        """
        Without a callback deliveries go, as L{Message}s and in order, to
        the consumer's queue; a C{get} waiting for one fires with it.
        """
        consumer = self.consume()
        pending = consumer.queue.get()
        self.assertNoResult(pending)
        self.broker.deliver("ctag", 1, b"one")
        self.broker.deliver("ctag", 2, b"two")
        first = self.successResultOf(pending)
        self.assertIsInstance(first, Message)
        self.assertEqual((first.body, first.delivery_tag), (b"one", 1))
        self.assertEqual(self.successResultOf(consumer.queue.get()).body, b"two")

    def test_callback_raises(self) -> None:
        """
        A callback that raises is logged with the consumer tag, and later
        deliveries still arrive.
        """
        log = CapturedLog(self)
        bodies: list[bytes] = []

        def callback(message: Message) -> None:
            bodies.append(message.body)
            if message.delivery_tag == 1:
                raise ZeroDivisionError("boom")

        self.consume(callback=callback)
        self.broker.deliver("ctag", 1, b"one")
        self.broker.deliver("ctag", 2, b"two")
        self.assertEqual(bodies, [b"one", b"two"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(any("ctag" in text for text in log.texts()))
        self.assertFalse(self.broker.transport.disconnecting)

    def test_callback_deferred_fails(self) -> None:
        """
        A callback returning a L{Deferred} that fails is logged too.
        """
        d: Deferred[None] = Deferred()
        self.consume(callback=lambda message: d)
        self.broker.deliver("ctag", 1)
        d.errback(ZeroDivisionError("later"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_coroutine_callback(self) -> None:
        """
        An C{async def} callback runs (as C{ConsumerService} handlers do),
        rather than leaving an un-awaited coroutine behind.
        """
        received: list[Message] = []

        async def callback(message: Message) -> None:
            received.append(message)

        self.consume(callback=callback)
        self.broker.deliver("ctag", 1, b"async")
        self.assertEqual([m.body for m in received], [b"async"])

    def test_consume_no_wait(self) -> None:
        """
        C{basic_consume(no_wait=True)} fires at once with the consumer, which
        already receives deliveries; without a consumer tag it fails with
        L{errors.LocalProtocolError}.
        """
        received: list[Message] = []
        d = self.channel.basic_consume(
            queue="q", consumer_tag="mine", no_wait=True, callback=received.append
        )
        consumer = self.successResultOf(d)
        self.assertEqual(consumer.consumer_tag, "mine")
        self.broker.deliver("mine", 1)
        self.assertEqual(len(received), 1)
        self.failureResultOf(
            self.channel.basic_consume(queue="q", no_wait=True), errors.LocalProtocolError
        )

    def test_basic_get(self) -> None:
        """
        C{basic_get} fires with a L{Message} for C{get-ok} and C{None} for
        C{get-empty}.
        """
        d = self.channel.basic_get(queue="q")
        self.broker.send(self.broker.frames.get_ok(1, b"got"))
        message = self.successResultOf(d)
        self.assertIsInstance(message, Message)
        self.assertEqual((message.body, message.delivery_tag), (b"got", 3))
        self.assertEqual(message.message_count, 4)
        self.assertIs(message.redelivered, True)
        empty = self.channel.basic_get(queue="q")
        self.broker.reply("basic.get-empty")
        self.assertIsNone(self.successResultOf(empty))

    def returned(self, body: bytes = b"back") -> None:
        self.broker.send(self.broker.frames.returned(1, body, "ex", "nowhere"))

    def test_return_handlers(self) -> None:
        """
        A returned message goes, as a L{Message}, to every handler added
        with C{add_return_handler}, and is not logged as unhandled.
        """
        log = CapturedLog(self)
        first: list[Message] = []
        second: list[Message] = []
        self.channel.add_return_handler(first.append)
        self.channel.add_return_handler(second.append)
        self.returned()
        [message] = first
        self.assertEqual(second, [message])
        self.assertEqual((message.body, message.reply_code), (b"back", 312))
        self.assertEqual(message.routing_key, "nowhere")
        self.assertFalse([text for text in log.texts() if "basic.return" in text])

    def test_return_handler_raises(self) -> None:
        """
        A return handler that raises is logged, like a consumer callback; it
        does not escape C{dataReceived} (Twisted would drop the connection)
        and the frames that came with the return are still handled.
        """
        self.channel.add_return_handler(lambda message: 1 / 0)
        declare = self.channel.queue_declare(queue="q")
        returned = self.broker.frames.returned(1, b"back", "ex", "nowhere")
        declare_ok = self.broker.frames.method(
            1, "queue.declare-ok", queue="q", message_count=0, consumer_count=0
        )
        self.broker.send(returned + declare_ok)
        self.assertEqual(self.successResultOf(declare).queue, "q")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_return_without_handler_logged(self) -> None:
        """
        Without handlers (and outside confirm mode) a returned message is
        logged, naming the method and the channel, and the connection goes
        on.
        """
        log = CapturedLog(self)
        self.returned()
        [text] = [text for text in log.texts() if "basic.return" in text]
        self.assertIn("channel 1", text)
        self.assertFalse(self.broker.transport.disconnecting)
        self.assertTrue(self.channel.is_open)

    def test_broker_cancels_consumer(self) -> None:
        """
        A C{basic.cancel} from the broker ends the consumer: its queue's
        waiting and later C{get}s fail with L{ConsumerCancelled}, which is a
        L{Closed} (what code waiting on a queue catches).
        """
        consumer = self.consume()
        waiting = consumer.queue.get()
        ended = consumer.when_ended()
        self.broker.reply("basic.cancel", consumer_tag="ctag", no_wait=True)
        reason = self.successResultOf(ended)
        self.assertIsInstance(reason, ConsumerCancelled)
        failure = self.failureResultOf(waiting, Closed)
        self.assertIs(failure.value, reason)
        self.failureResultOf(consumer.queue.get(), ConsumerCancelled)
        self.assertIsInstance(consumer.cancelled, ConsumerCancelled)
        self.assertNotIn("ctag", self.channel.consumers)

    def test_client_cancels_consumer(self) -> None:
        """
        C{consumer.cancel()} sends C{basic.cancel} and ends the consumer on
        C{cancel-ok}.
        """
        consumer = self.consume()
        d = consumer.cancel()
        [cancel] = self.broker.sent()
        self.assertEqual((cancel.NAME, cancel.consumer_tag), ("basic.cancel", "ctag"))
        self.broker.reply("basic.cancel-ok", consumer_tag="ctag")
        self.assertEqual(self.successResultOf(d).NAME, "basic.cancel-ok")
        self.failureResultOf(consumer.queue.get(), Closed)

    def test_channel_close_ends_consumers(self) -> None:
        """
        A channel closed by the broker ends its consumers' queues.
        """
        consumer = self.consume()
        self.broker.reply("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED")
        failure = self.failureResultOf(consumer.queue.get(), Closed)
        self.assertIsInstance(failure.value.reason, errors.PreconditionFailed)

    def test_unknown_consumer_logged(self) -> None:
        """
        A delivery for a consumer tag the channel does not know is logged
        with its delivery tag and consumer tag, left unacknowledged, and
        given to no consumer; the connection goes on.
        """
        log = CapturedLog(self)
        received: list[Message] = []
        self.consume(callback=received.append)
        self.broker.deliver("late", 4, b"x")
        self.assertEqual(received, [])
        [text] = [text for text in log.texts() if "unknown consumer" in text]
        self.assertIn("late", text)
        self.assertIn("delivery 4", text)
        self.assertEqual(self.broker.sent(), [])
        self.assertFalse(self.broker.transport.disconnecting)
        self.broker.deliver("ctag", 5)
        self.assertEqual([m.delivery_tag for m in received], [5])

    def test_unclaimed_handler(self) -> None:
        """
        With an unclaimed handler, a delivery for a consumer tag the channel
        does not know goes to it instead of the log; C{None} restores the
        log.
        """
        unclaimed: list[Message] = []
        self.consume(callback=lambda m: None)
        self.channel.set_unclaimed_handler(unclaimed.append)
        self.broker.deliver("late", 4, b"x")
        self.assertEqual([(m.consumer_tag, m.body) for m in unclaimed], [("late", b"x")])
        self.channel.set_unclaimed_handler(None)
        log = CapturedLog(self)
        self.broker.deliver("late", 5, b"y")
        self.assertEqual(len(unclaimed), 1)
        self.assertTrue([text for text in log.texts() if "unknown consumer" in text])

    def test_ack_nack_reject(self) -> None:
        """
        C{ack}, C{nack} and C{reject} on a message send the right method with
        its delivery tag.
        """
        received: list[Message] = []
        self.consume(callback=received.append)
        self.broker.deliver("ctag", 41)
        [message] = received
        self.assertIsNone(self.successResultOf(message.ack()))
        self.assertIsNone(self.successResultOf(message.ack(multiple=True)))
        self.assertIsNone(self.successResultOf(message.nack(requeue=False)))
        self.assertIsNone(self.successResultOf(message.reject()))
        ack, ack_multiple, nack, reject = self.broker.sent()
        self.assertEqual((ack.NAME, ack.delivery_tag, ack.multiple), ("basic.ack", 41, False))
        self.assertIs(ack_multiple.multiple, True)
        self.assertEqual(
            (nack.NAME, nack.delivery_tag, nack.requeue, nack.multiple),
            ("basic.nack", 41, False, False),
        )
        self.assertEqual(
            (reject.NAME, reject.delivery_tag, reject.requeue), ("basic.reject", 41, True)
        )


class PublishTests(SynchronousTestCase):
    """
    C{basic_publish} in its several forms.
    """

    def setUp(self) -> None:
        self.broker = open_broker()
        self.channel = self.broker.open_channel()

    def published(self) -> tuple[Method, Any, bytes]:
        """
        The method, properties and body of the one message published.
        """
        frames = self.broker.frames_sent()
        kinds = [kind for kind, _, _ in frames]
        self.assertEqual(kinds[:2], [_frames.FRAME_METHOD, _frames.FRAME_HEADER])
        method = frames[0][2]
        _, size, properties = frames[1][2]
        body = b"".join(item for kind, _, item in frames[2:] if kind == _frames.FRAME_BODY)
        self.assertEqual(size, len(body))
        return method, properties, body

    def test_properties_dict(self) -> None:
        """
        Properties may be a dict, in any spelling of the names.
        """
        d = self.channel.basic_publish(
            exchange="ex",
            routing_key="rk",
            body=b"data",
            properties={"content-type": "application/json", "delivery_mode": 2},
            mandatory=True,
        )
        self.assertIsNone(self.successResultOf(d))
        method, properties, body = self.published()
        self.assertEqual(
            (method.NAME, method.exchange, method.routing_key, method.mandatory),
            ("basic.publish", "ex", "rk", True),
        )
        self.assertEqual(properties.content_type, "application/json")
        self.assertEqual(properties.delivery_mode, 2)
        self.assertEqual(body, b"data")

    def test_properties_object(self) -> None:
        """
        A C{Basic.Properties} is sent as is.
        """
        props = self.broker.client.core.methods.properties[60](
            correlation_id="c1", headers={"h": "v"}
        )
        self.channel.basic_publish(routing_key="q", body=b"x", properties=props)
        _, properties, _ = self.published()
        self.assertEqual(properties, props)

    def test_no_content_keyword(self) -> None:
        """
        txAMQP's C{content=} is not a parameter of the modern
        C{basic_publish} (it belongs to the txAMQP channel): it raises
        L{TypeError} naming it at once, and nothing is sent.
        """
        exc = self.assertRaises(
            TypeError, self.channel.basic_publish, routing_key="q", content=b"x"
        )
        self.assertIn("content", str(exc))
        self.assertEqual(self.broker.transport.value(), b"")

    def test_str_body(self) -> None:
        """
        A C{str} body is sent as UTF-8, with empty properties.
        """
        self.channel.basic_publish(routing_key="q", body="\u00fcber")
        _, properties, body = self.published()
        self.assertEqual(body, "\u00fcber".encode())
        self.assertIsNone(properties.content_type)

    def test_large_body_split(self) -> None:
        """
        A body larger than a frame is split into body frames.
        """
        body = b"x" * 300000
        self.channel.basic_publish(routing_key="q", body=body)
        frames = self.broker.frames_sent()
        bodies = [item for kind, _, item in frames if kind == _frames.FRAME_BODY]
        self.assertGreater(len(bodies), 1)
        self.assertEqual(b"".join(bodies), body)

    def test_bad_property(self) -> None:
        """
        An unknown property raises L{TypeError} naming it at once; nothing
        is sent.
        """
        exc = self.assertRaises(
            TypeError, self.channel.basic_publish, body=b"x", properties={"colour": "red"}
        )
        self.assertIn("colour", str(exc))
        self.assertEqual(self.broker.transport.value(), b"")

    def test_confirm_mode_however_selected(self) -> None:
        """
        C{confirm.select} sent through C{invoke} (as wrappers such as the
        recovering channel send it) puts the channel in confirm mode as
        C{confirm_select} does: publishes fire on the broker's ack.
        """
        self.channel.invoke("confirm.select")
        self.broker.reply("confirm.select-ok")
        self.assertIsNotNone(self.channel.confirms)
        d = self.channel.basic_publish(routing_key="q", body=b"x")
        self.assertNoResult(d)
        self.broker.reply("basic.ack", delivery_tag=1, multiple=False)
        self.assertIsNone(self.successResultOf(d))


class SecrecyTests(SynchronousTestCase):
    """
    The password never shows.
    """

    def test_not_in_repr_or_log(self) -> None:
        """
        Neither C{repr(client)}, the C{start-ok} repr, nor anything logged
        during a handshake (and a refusal) contains the password.
        """
        log = CapturedLog(self)
        broker = Broker(credentials=Credentials("app", PASSWORD))
        broker.send(broker.frames.start())
        [start_ok] = broker.sent()
        self.assertIn(PASSWORD.encode(), start_ok.response)
        self.assertNotIn(PASSWORD, repr(start_ok))
        self.assertNotIn(PASSWORD, str(start_ok))
        self.assertNotIn(PASSWORD, repr(broker.client))
        self.assertNotIn(PASSWORD, repr(broker.client.core.credentials))
        broker.reply("connection.close", 0, reply_code=403, reply_text="ACCESS_REFUSED")
        self.failureResultOf(broker.client.when_open(), errors.AuthenticationError)
        broker.lose()
        self.assertTrue(log.events)
        for event in log.events:
            self.assertNotIn(PASSWORD, formatEvent(event))
            self.assertNotIn(PASSWORD, repr(event))


class CloseOrderingTests(SynchronousTestCase):
    """
    Code run when a channel's close Deferred fires sees a closed channel.
    """

    def test_call_in_close_callback(self) -> None:
        """
        A call made from the channel_close() callback fails with
        ChannelClosed, not a protocol error.
        """
        broker = Broker()
        broker.handshake()
        ch = broker.open_channel()
        later: list[Any] = []
        ch.channel_close().addCallback(lambda _: later.append(ch.queue_declare(queue="q")))
        broker.sent()
        broker.reply("channel.close-ok")
        self.failureResultOf(later[0], errors.ChannelClosed)
        self.assertIsNotNone(ch.closed)


class ChannelCloseTimeoutTests(SynchronousTestCase):
    """
    A channel close the broker never answers completes after close_timeout.
    """

    def test_timeout(self) -> None:
        """
        With no close-ok, channel_close() fires after close_timeout, pending
        calls fail, and the id is not reused until the broker answers.
        """
        broker = Broker(close_timeout=5)
        broker.handshake()
        ch = broker.open_channel()
        pending = ch.queue_declare(queue="q")
        d = ch.channel_close()
        broker.sent()
        broker.clock.advance(4)
        self.assertNoResult(d)
        broker.clock.advance(1)
        self.assertIsNone(self.successResultOf(d))
        self.failureResultOf(pending, errors.ChannelClosed)
        self.failureResultOf(ch.queue_declare(queue="x"), errors.ChannelClosed)
        broker.client.open_channel()
        [(number, name)] = broker.sent_names()
        self.assertEqual((number, name), (2, "channel.open"))

    def test_close_ok_cancels_timer(self) -> None:
        """
        A timely close-ok leaves no timer behind.
        """
        broker = Broker()
        broker.handshake()
        ch = broker.open_channel()
        d = ch.channel_close()
        broker.reply("channel.close-ok")
        self.successResultOf(d)
        self.assertEqual([c for c in broker.clock.getDelayedCalls() if "close" in repr(c.func)], [])


class HotPathTests(SynchronousTestCase):
    """
    The publish, delivery and ack paths: writes are batched while received
    frames are handled, reused method objects never mix fields up, and the
    direct C{basic_ack} keeps the rules of any other call.
    """

    def setUp(self) -> None:
        self.broker = Broker()
        self.broker.handshake()
        self.channel = self.broker.open_channel()

    def test_acks_from_callbacks_share_one_write(self) -> None:
        """
        Deliveries that arrive in one C{dataReceived} and are acked in the
        consumer callback produce one transport write holding every ack, in
        order.
        """
        self.channel.basic_consume(
            queue="q", consumer_tag="c", no_wait=True, callback=lambda m: m.ack()
        )
        self.broker.sent()
        data = b"".join(
            self.broker.frames.content(
                1,
                "basic.deliver",
                b"body",
                consumer_tag="c",
                delivery_tag=tag,
                redelivered=False,
                exchange="",
                routing_key="q",
            )
            for tag in (1, 2, 3)
        )
        before = self.broker.transport.writes
        self.broker.send(data)
        self.assertEqual(self.broker.transport.writes - before, 1)
        acks = self.broker.sent()
        self.assertEqual(
            [(a.NAME, a.delivery_tag) for a in acks], [("basic.ack", t) for t in (1, 2, 3)]
        )

    def test_publish_outside_callbacks_is_written_at_once(self) -> None:
        """
        A publish made outside the handling of received frames reaches the
        transport before C{basic_publish} returns.
        """
        self.channel.basic_publish(exchange="", routing_key="q", body=b"now")
        kinds = [kind for kind, _, _ in self.broker.frames_sent()]
        self.assertEqual(kinds, [_frames.FRAME_METHOD, _frames.FRAME_HEADER, _frames.FRAME_BODY])

    def test_publishes_in_one_turn_share_writes(self) -> None:
        """
        The first publish of a reactor turn is written at once; the ones
        after it wait for the end of the turn (C{callLater(0)}), or for a
        write of anything else, which takes them along in order.
        """
        transport = self.broker.transport
        before = transport.writes
        for i in range(3):
            self.channel.basic_publish(routing_key="q", body=b"%d" % i)
        self.assertEqual(transport.writes - before, 1)
        self.broker.clock.advance(0)
        self.assertEqual(transport.writes - before, 2)
        self.channel.basic_publish(routing_key="q", body=b"3")
        self.channel.basic_publish(routing_key="q", body=b"4")
        self.channel.basic_ack(delivery_tag=9)
        self.assertEqual(transport.writes - before, 4)
        frames = self.broker.frames_sent()
        self.assertEqual(
            [item for kind, _, item in frames if kind == _frames.FRAME_BODY],
            [b"0", b"1", b"2", b"3", b"4"],
        )
        self.assertEqual(
            [item.NAME for kind, _, item in frames if kind == _frames.FRAME_METHOD][-1],
            "basic.ack",
        )
        self.assertEqual(self.broker.clock.getDelayedCalls(), [])

    def test_waiting_publishes_bounded(self) -> None:
        """
        At most 64 publishes wait for the end of the turn: the 64th after
        the turn's first is written with the ones before it.
        """
        transport = self.broker.transport
        before = transport.writes
        for _ in range(1 + 64):
            self.channel.basic_publish(routing_key="q", body=b"m")
        self.assertEqual(transport.writes - before, 2)
        self.assertEqual(len(self.broker.frames_sent()), 3 * 65)

    def test_lost_connection_cancels_end_of_turn(self) -> None:
        """
        Publishes waiting for the end of the turn when the connection is
        lost are not written to the gone transport, and no timer is left.
        """
        self.channel.basic_publish(routing_key="q", body=b"first")
        self.channel.basic_publish(routing_key="q", body=b"waits")
        self.broker.transport.clear()
        self.broker.client.connectionLost(Failure(ConnectionLost("gone")))
        self.assertEqual(self.broker.clock.getDelayedCalls(), [])
        self.assertEqual(self.broker.transport.value(), b"")

    def test_publish_fields_are_not_mixed_up(self) -> None:
        """
        Publishes to different routing keys, exchanges and flags, repeated,
        each go out with their own fields.
        """
        calls = [
            ("", "a", False),
            ("", "b", False),
            ("ex", "a", True),
            ("", "a", False),
            ("ex", "a", False),
        ]
        for exchange, key, mandatory in calls:
            self.channel.basic_publish(
                exchange=exchange, routing_key=key, body=b"x", mandatory=mandatory
            )
        sent = [(m.exchange, m.routing_key, m.mandatory) for m in self.broker.sent()]
        self.assertEqual(sent, calls)

    def test_empty_properties_then_given_properties(self) -> None:
        """
        A publish without properties after one with properties is sent with
        none: the reused empty properties carry nothing over.
        """
        self.channel.basic_publish(routing_key="q", body=b"1", properties={"priority": 3})
        self.channel.basic_publish(routing_key="q", body=b"2")
        headers = [
            item for kind, _, item in self.broker.frames_sent() if kind == _frames.FRAME_HEADER
        ]
        self.assertEqual(len(headers), 2)
        self.assertEqual(headers[0][2].priority, 3)
        self.assertIsNone(headers[1][2].priority)

    def test_ack_on_closed_channel_fails(self) -> None:
        """
        C{basic_ack} on a channel the broker closed fails with the channel's
        error and sends nothing.
        """
        self.broker.reply(
            "channel.close", reply_code=404, reply_text="NOT_FOUND", class_id=50, method_id=10
        )
        self.broker.sent()
        self.failureResultOf(self.channel.basic_ack(delivery_tag=1), errors.NotFound)
        self.assertEqual(self.broker.sent(), [])

    def test_ack_fields(self) -> None:
        """
        C{basic_ack} sends the delivery tag and C{multiple} given, and fires
        with C{None}.
        """
        self.assertIsNone(self.successResultOf(self.channel.basic_ack(7, multiple=True)))
        [ack] = self.broker.sent()
        self.assertEqual((ack.NAME, ack.delivery_tag, ack.multiple), ("basic.ack", 7, True))

    def test_close_from_broker_inside_callbacks_writes_close_ok(self) -> None:
        """
        The broker's C{connection.close} arriving in the same data as a
        delivery still gets its C{close-ok} written before the transport is
        closed, although writes wait while received frames are handled.
        """
        received: list[Message] = []
        self.channel.basic_consume(
            queue="q", consumer_tag="c", no_wait=True, callback=received.append
        )
        self.broker.sent()
        data = self.broker.frames.content(
            1,
            "basic.deliver",
            b"body",
            consumer_tag="c",
            delivery_tag=1,
            redelivered=False,
            exchange="",
            routing_key="q",
        ) + self.broker.frames.method(
            0, "connection.close", reply_code=320, reply_text="bye", class_id=0, method_id=0
        )
        self.broker.send(data)
        self.assertEqual([m.body for m in received], [b"body"])
        self.assertEqual([m.NAME for m in self.broker.sent()], ["connection.close-ok"])
        self.assertTrue(self.broker.transport.disconnecting)
        self.assertEqual(self.broker.transport.written_after_lose, [])

    def test_large_publish_from_callback_written_at_once(self) -> None:
        """
        A callback run while received frames are handled that publishes a
        large body has it written at once, so the transport's backpressure
        still applies to code resumed by a reply.
        """
        seen: list[int] = []

        def on_message(message: Message) -> None:
            before = self.broker.transport.writes
            self.channel.basic_publish(routing_key="q", body=b"x" * 20000)
            seen.append(self.broker.transport.writes - before)

        self.channel.basic_consume(queue="q", consumer_tag="c", no_wait=True, callback=on_message)
        self.broker.sent()
        self.broker.deliver("c", 1)
        self.assertEqual(seen, [1])


class FootprintTests(SynchronousTestCase):
    """
    What an idle channel and an idle consumer keep in memory, as the scale
    benchmark (C{python -m bench.scale}) measures it with a thousand of
    them: only what each needs while idle.  An empty C{deque} is some 600
    bytes, so the queues of held publishes and of calls waiting behind
    another, and a consumer's message queue when it has a callback, are
    made only when first needed.
    """

    #: traced bytes per item, with room above what CPython 3.10-3.13 take
    #: (about 1,750 per channel and 300 per consumer); before the queues
    #: were made lazily, 4,000 and 1,900
    CHANNEL_BYTES = 2_400
    CONSUMER_BYTES = 600

    #: traced bytes per C{basic.consume} waiting behind another on its
    #: channel, everything counted (the Deferred, its callback list, the
    #: method): about 640 on CPython 3.11; 1,330 when a queued call kept a
    #: callback closure on its Deferred and its encoded frame
    QUEUED_CALL_BYTES = 800

    def traced(
        self, make: Callable[[int], object], count: int = 200, everything: bool = False
    ) -> float:
        """
        The bytes allocated in txamqp_next's channel code (or, with
        C{everything}, anywhere), per item, to make C{count} items that are
        kept.
        """
        code = [
            tracemalloc.Filter(True, f"*{os.sep}txamqp_next{os.sep}{name}")
            for name in ("channel.py", "connection.py", "_connection.py", "queue.py")
        ]
        if everything:
            code = [tracemalloc.Filter(False, tracemalloc.__file__)]
        gc.collect()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = tracemalloc.take_snapshot().filter_traces(code)
        items = [make(i) for i in range(count)]
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(code)
        self.assertEqual(len(items), count)
        return sum(s.size_diff for s in after.compare_to(before, "filename")) / count

    def test_idle_channel(self) -> None:
        """
        An open channel with nothing in flight keeps no queue of waiting
        calls or held publishes of its own.
        """
        broker = open_broker()
        per_channel = self.traced(lambda _: broker.open_channel())
        self.assertLess(per_channel, self.CHANNEL_BYTES)

    def test_idle_consumer(self) -> None:
        """
        A consumer with a callback has no message queue until something
        asks for it; one asked for after the consumer ended is closed.
        """
        broker = open_broker()
        channel = broker.open_channel()

        def consume(i: int) -> Consumer:
            d = channel.basic_consume(queue="q", consumer_tag=f"c{i}", callback=print)
            broker.reply("basic.consume-ok", consumer_tag=f"c{i}")
            return self.successResultOf(d)

        per_consumer = self.traced(consume)
        self.assertLess(per_consumer, self.CONSUMER_BYTES)
        consumer = channel.consumers["c0"]
        d = consumer.cancel()
        broker.reply("basic.cancel-ok", consumer_tag="c0")
        self.successResultOf(d)
        self.failureResultOf(consumer.queue.get(), ConsumerCancelled)

    def test_queued_calls(self) -> None:
        """
        Calls made at once on one channel wait behind the first for their
        turn holding their L{Deferred}, method and reply handler only: no
        encoded frame and no callback closure.  They go out one by one, as
        encoded when they were made, and each fires with its L{Consumer}.
        """
        broker = open_broker()
        channel = broker.open_channel()
        callbacks = [lambda m, i=i: None for i in range(200)]
        calls = []

        def consume(i: int) -> Deferred[Consumer]:
            d = channel.basic_consume(queue=f"queue-{i}", callback=callbacks[i])
            calls.append(d)
            return d

        per_call = self.traced(consume, everything=True)
        self.assertLess(per_call, self.QUEUED_CALL_BYTES)
        for i, d in enumerate(calls):
            [method] = broker.sent()
            self.assertEqual((method.NAME, method.queue), ("basic.consume", f"queue-{i}"))
            self.assertNoResult(d)
            broker.reply("basic.consume-ok", consumer_tag=f"tag-{i}")
            consumer = self.successResultOf(d)
            self.assertEqual(consumer.consumer_tag, f"tag-{i}")
            self.assertIs(consumer.callback, callbacks[i])
        self.assertEqual(broker.sent(), [])
        self.assertEqual(sorted(channel.consumers), sorted(f"tag-{i}" for i in range(200)))
