# -*- test-case-name: tests.test_txamqp_compat -*-
"""
Unit tests for txAMQP's names on top of the modern adapter:
L{txamqp_next.protocol.AMQClient} and L{txamqp_next.protocol.AMQChannel},
the delegate, C{client.queue(tag)}, C{basic_return_queue}, the C{started}
and C{disconnected} events, L{Content} and txAMQP messages as replies.

Each test drives one L{AMQClient} over a L{StringTransport} with the fake
broker of L{tests.test_protocol}, and a L{Clock} for time; no reactor and
no socket.  The same code runs against RabbitMQ in
L{tests.integration.test_txamqp_compat}.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import PASSWORD, Broker, CapturedLog
from txamqp_next import _frames, errors
from txamqp_next._codec import decode_table
from txamqp_next._txmessage import TxMessage
from txamqp_next.channel import Channel, ConsumerCancelled
from txamqp_next.client import Closed, TwistedDelegate
from txamqp_next.content import Content
from txamqp_next.factory import AMQFactory
from txamqp_next.protocol import AMQChannel, AMQClient
from txamqp_next.queue import Closed as QueueClosed
from txamqp_next.spec import DEFAULT_SPEC, load


class RecordingDelegate(TwistedDelegate):
    """
    A txAMQP delegate that records what it is told.  Deliveries and returns
    are recorded instead of queued (a subclass overriding a handler, as
    txAMQP applications do).

    @ivar calls: C{(handler name, channel, message)} for each method
        dispatched to a handler defined here.
    @ivar closed: the reasons given to L{close}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any, TxMessage]] = []
        self.closed: list[Any] = []

    def basic_deliver(self, ch: Any, msg: Any) -> None:
        self.calls.append(("basic_deliver", ch, msg))

    def basic_return_(self, ch: Any, msg: Any) -> None:
        self.calls.append(("basic_return_", ch, msg))

    def basic_cancel(self, ch: Any, msg: Any) -> None:
        self.calls.append(("basic_cancel", ch, msg))

    def channel_close(self, ch: Any, msg: Any) -> None:
        self.calls.append(("channel_close", ch, msg))

    def connection_close(self, ch: Any, msg: Any) -> None:
        self.calls.append(("connection_close", ch, msg))

    def close(self, reason: Any) -> None:
        self.closed.append(reason)

    def handled(self, name: str) -> list[tuple[Any, TxMessage]]:
        """
        The C{(channel, message)} pairs given to the handler C{name}.
        """
        return [(ch, msg) for handler, ch, msg in self.calls if handler == name]


def connect(**kwargs: Any) -> Broker:
    """
    A fake broker with an L{AMQClient} connected the txAMQP way: made
    without credentials, then C{authenticate("guest", "guest")}, which has
    fired.

    @param kwargs: for L{AMQClient} (C{delegate}, C{vhost}, ...).
    """
    kwargs.setdefault("credentials", None)
    broker = Broker(cls=AMQClient, **kwargs)
    d = broker.client.authenticate("guest", "guest")
    broker.handshake()
    broker.successResult(d)
    return broker


def open_channel(broker: Broker, channel_id: int = 1) -> AMQChannel:
    """
    C{client.channel(channel_id)} and its C{channel_open()}, answered.
    """
    channel = broker.successResult(broker.client.channel(channel_id))
    d = channel.channel_open()
    assert broker.sent_names() == [(channel_id, "channel.open")]
    broker.reply("channel.open-ok", channel_id)
    broker.successResult(d)
    return channel


class HandshakeTests(SynchronousTestCase):
    """
    C{authenticate} and C{start} after connecting, and the C{started} and
    C{disconnected} events.
    """

    def test_authenticate_after_start(self) -> None:
        """
        Made without credentials, the client sends only the protocol header
        and leaves C{start} unanswered; C{authenticate} sends C{start-ok}
        with txAMQP's default mechanism, AMQPLAIN (a field table), and its
        L{Deferred} fires with the broker's C{connection.open-ok} as a
        txAMQP message.
        """
        broker = Broker(cls=AMQClient, credentials=None)
        self.assertEqual(broker.transport.value(), b"AMQP\x00\x00\x09\x01")
        broker.frames_sent()
        broker.send(broker.frames.start())
        self.assertEqual(broker.transport.value(), b"")
        d = broker.client.authenticate("guest", PASSWORD)
        [start_ok] = broker.sent()
        self.assertEqual(start_ok.NAME, "connection.start-ok")
        self.assertEqual(start_ok.mechanism, "AMQPLAIN")
        response = start_ok.response
        table, _ = decode_table(len(response).to_bytes(4, "big") + response, 0)
        self.assertEqual(table, {"LOGIN": "guest", "PASSWORD": PASSWORD})
        self.assertNotIn(PASSWORD, repr(start_ok))
        broker.send(broker.frames.tune(heartbeat=0))
        self.assertNoResult(d)
        broker.send(broker.frames.open_ok())
        open_ok = self.successResultOf(d)
        self.assertIsInstance(open_ok, TxMessage)
        self.assertEqual(
            (open_ok.method.klass.name, open_ok.method.name), ("connection", "open-ok")
        )

    def test_authenticate_before_start(self) -> None:
        """
        C{authenticate} may be called before C{start} arrives (txAMQP
        programs call it right after connecting): C{start-ok} goes out when
        C{start} comes.
        """
        broker = Broker(cls=AMQClient, credentials=None)
        broker.frames_sent()
        d = broker.client.authenticate("guest", "guest")
        self.assertEqual(broker.transport.value(), b"")
        broker.send(broker.frames.start())
        [start_ok] = broker.sent()
        self.assertEqual(start_ok.mechanism, "AMQPLAIN")
        broker.send(broker.frames.tune(heartbeat=0))
        broker.send(broker.frames.open_ok())
        self.assertEqual(self.successResultOf(d).method.name, "open-ok")

    def test_authenticate_plain(self) -> None:
        """
        C{mechanism="PLAIN"} sends the PLAIN response.
        """
        broker = Broker(cls=AMQClient, credentials=None)
        broker.send(broker.frames.start())
        broker.frames_sent()
        broker.client.authenticate("guest", PASSWORD, mechanism="PLAIN")
        [start_ok] = broker.sent()
        self.assertEqual(start_ok.mechanism, "PLAIN")
        self.assertEqual(start_ok.response, b"\0guest\0" + PASSWORD.encode())

    def test_authenticate_unknown_mechanism(self) -> None:
        """
        A mechanism other than AMQPLAIN and PLAIN fails with txAMQP's
        L{ValueError} and sends nothing.
        """
        broker = Broker(cls=AMQClient, credentials=None)
        broker.send(broker.frames.start())
        broker.frames_sent()
        d = broker.client.authenticate("guest", "guest", mechanism="CRAM-MD5")
        failure = self.failureResultOf(d, ValueError)
        self.assertIn("CRAM-MD5", str(failure.value))
        self.assertEqual(broker.sent(), [])

    def test_start_mechanism_not_offered(self) -> None:
        """
        C{start} with a response for a mechanism the broker does not offer
        fails with L{errors.AuthenticationError} naming it, and the
        transport is dropped.
        """
        broker = Broker(cls=AMQClient, credentials=None)
        broker.send(broker.frames.start(mechanisms=b"PLAIN AMQPLAIN"))
        d = broker.client.start(b"", mechanism="EXTERNAL")
        failure = self.failureResultOf(d, errors.AuthenticationError)
        self.assertIn("EXTERNAL", str(failure.value))
        self.assertTrue(broker.transport.disconnecting)

    def test_authenticate_twice(self) -> None:
        """
        A second C{authenticate} while the handshake is under way fails
        with L{errors.LocalProtocolError} and sends nothing.
        """
        broker = Broker(cls=AMQClient, credentials=None)
        broker.send(broker.frames.start())
        broker.client.authenticate("guest", "guest")
        broker.frames_sent()
        d = broker.client.authenticate("guest", "guest")
        failure = self.failureResultOf(d, errors.LocalProtocolError)
        self.assertIn("authenticate", str(failure.value))
        self.assertEqual(broker.sent(), [])

    def test_authenticate_when_open(self) -> None:
        """
        C{authenticate} on a client already open (made with credentials)
        fires at once with a C{connection.open-ok} message and sends
        nothing.
        """
        broker = Broker(cls=AMQClient)
        broker.handshake()
        open_ok = self.successResultOf(broker.client.authenticate("guest", "guest"))
        self.assertEqual(open_ok.method.name, "open-ok")
        self.assertEqual(broker.sent(), [])

    def test_secret_not_shown(self) -> None:
        """
        Neither the C{start-ok} repr, C{repr(client)}, nor anything logged
        during a handshake made with C{authenticate} (and a refusal)
        contains the password.
        """
        log = CapturedLog(self)
        broker = Broker(cls=AMQClient, credentials=None)
        d = broker.client.authenticate("app", PASSWORD)
        broker.send(broker.frames.start())
        [start_ok] = broker.sent()
        self.assertIn(PASSWORD.encode(), start_ok.response)
        self.assertNotIn(PASSWORD, repr(start_ok))
        self.assertNotIn(PASSWORD, repr(broker.client))
        broker.reply("connection.close", 0, reply_code=403, reply_text="ACCESS_REFUSED")
        self.failureResultOf(d, errors.AuthenticationError)
        broker.lose()
        self.assertTrue(log.events)
        for text in log.texts():
            self.assertNotIn(PASSWORD, text)

    def test_started_and_disconnected(self) -> None:
        """
        C{client.started} fires on C{open-ok}, and C{client.disconnected}
        once the transport is gone; the C{heartbeatInterval} and
        C{MAX_LENGTH} are the tuned ones.
        """
        broker = Broker(cls=AMQClient, credentials=None, heartbeat=30)
        started = broker.client.started.wait()
        disconnected = broker.client.disconnected.wait()
        self.assertEqual(broker.client.MAX_LENGTH, 4096)
        broker.client.authenticate("guest", "guest")
        broker.send(broker.frames.start())
        broker.send(broker.frames.tune(heartbeat=10, frame_max=65536))
        self.assertNoResult(started)
        broker.send(broker.frames.open_ok())
        self.assertIs(self.successResultOf(started), True)
        self.assertEqual(broker.client.heartbeatInterval, 10)
        self.assertEqual(broker.client.MAX_LENGTH, 65536)
        self.assertNoResult(disconnected)
        broker.lose(ConnectionLost)
        self.assertIs(self.successResultOf(disconnected), True)

    def test_started_fails_when_refused(self) -> None:
        """
        A connection refused during the handshake fails C{client.started}
        and C{authenticate} with the L{Closed} error
        (L{errors.AuthenticationError}); C{disconnected} fires once the
        transport is gone.
        """
        broker = Broker(cls=AMQClient, credentials=None)
        started = broker.client.started.wait()
        d = broker.client.authenticate("guest", "guest")
        broker.send(broker.frames.start())
        broker.reply("connection.close", 0, reply_code=403, reply_text="ACCESS_REFUSED")
        failure = self.failureResultOf(started, Closed)
        self.assertIsInstance(failure.value, errors.AuthenticationError)
        self.failureResultOf(d, errors.AuthenticationError)
        broker.lose()
        self.assertIs(self.successResultOf(broker.client.disconnected.wait()), True)

    def test_silent_broker_before_open(self) -> None:
        """
        With heartbeats asked for, a broker silent for
        C{MAX_UNSEEN_HEARTBEAT} intervals during the handshake has the
        transport aborted (txAMQP's check); data from it restarts the wait.
        """
        broker = Broker(cls=AMQClient, credentials=None, heartbeat=10)
        broker.clock.advance(29)
        broker.send(broker.frames.start())
        broker.clock.advance(29)
        self.assertFalse(broker.transport.aborted)
        broker.clock.advance(1)
        self.assertTrue(broker.transport.aborted)


class ChannelTests(SynchronousTestCase):
    """
    C{client.channel(id)} and the txAMQP channel's calls and replies.
    """

    def setUp(self) -> None:
        self.broker = connect()
        self.client = self.broker.client

    def test_same_channel_for_id(self) -> None:
        """
        C{channel(id)} gives the same L{AMQChannel} for an id every time,
        registered in C{client.channels}, and sends nothing until it is
        used; the id is required.
        """
        one = self.successResultOf(self.client.channel(1))
        self.assertIsInstance(one, AMQChannel)
        self.assertIs(self.successResultOf(self.client.channel(1)), one)
        self.assertEqual(one.id, 1)
        five = self.successResultOf(self.client.channel(5))
        self.assertEqual(five.id, 5)
        self.assertIsNot(five, one)
        self.assertIs(self.client.channels[1], one)
        self.assertRaises(TypeError, self.client.channel)
        self.assertEqual(self.broker.sent(), [])

    def test_channel_open(self) -> None:
        """
        C{channel_open()} sends C{channel.open} and fires with the broker's
        C{open-ok} as a txAMQP message; the modern L{Channel} underneath is
        then open.
        """
        channel = self.successResultOf(self.client.channel(1))
        self.assertIsNone(channel.channel)
        d = channel.channel_open()
        self.assertEqual(self.broker.sent_names(), [(1, "channel.open")])
        self.assertNoResult(d)
        self.broker.reply("channel.open-ok")
        reply = self.successResultOf(d)
        self.assertIsInstance(reply, TxMessage)
        self.assertEqual((reply.method.klass.name, reply.method.name), ("channel", "open-ok"))
        self.assertIsInstance(channel.channel, Channel)
        self.assertTrue(channel.channel.is_open)
        self.assertFalse(channel.closed)

    def test_reply_is_txamqp_message(self) -> None:
        """
        A call fires with the reply as a txAMQP message: fields by name, in
        order in C{fields} and by index, and the method's class and name.
        """
        channel = open_channel(self.broker)
        d = channel.queue_declare(queue="q", durable=True)
        [declare] = self.broker.sent()
        self.assertEqual(
            (declare.NAME, declare.queue, declare.durable), ("queue.declare", "q", True)
        )
        self.broker.reply("queue.declare-ok", queue="q", message_count=3, consumer_count=1)
        reply = self.successResultOf(d)
        self.assertEqual((reply.method.klass.name, reply.method.name), ("queue", "declare-ok"))
        self.assertEqual((reply.queue, reply.message_count, reply.consumer_count), ("q", 3, 1))
        self.assertEqual(reply.fields, ["q", 3, 1])
        self.assertEqual(reply[0], "q")

    def test_positional_arguments(self) -> None:
        """
        Fields may be given positionally in the spec's order, the reserved
        C{ticket} first.
        """
        channel = open_channel(self.broker)
        channel.queue_declare(0, "q", False, True)
        [declare] = self.broker.sent()
        self.assertEqual((declare.queue, declare.passive, declare.durable), ("q", False, True))

    def test_bits_by_truth(self) -> None:
        """
        Bits given as txAMQP code gave them (C{exclusive="True"},
        C{durable=1}, C{passive=""}) go out as their truth.
        """
        channel = open_channel(self.broker)
        channel.queue_declare(queue="q", exclusive="True", durable=1, passive="")
        [declare] = self.broker.sent()
        self.assertEqual((declare.exclusive, declare.durable, declare.passive), (True, True, False))
        self.assertIs(type(declare.exclusive), bool)

    def test_nowait(self) -> None:
        """
        txAMQP's C{nowait=True} is honoured: the call fires with C{None} at
        once and the next call is sent without waiting.
        """
        channel = open_channel(self.broker)
        self.assertIsNone(self.successResultOf(channel.queue_declare(queue="q", nowait=True)))
        [declare] = self.broker.sent()
        self.assertIs(declare.no_wait, True)

    def test_used_before_open(self) -> None:
        """
        A call on a channel never opened ends the connection with 504
        (channel error), as the broker did when txAMQP sent such a call:
        the call is not sent, C{connection.close} 504 is, and every call
        fails with L{errors.ChannelError} (a C{ConnectionClosed}) whose
        C{args[0]} is that close.
        """
        other = open_channel(self.broker, 2)
        waiting = other.queue_declare(queue="w")
        self.broker.sent()
        channel = self.successResultOf(self.client.channel(1))
        failure = self.failureResultOf(channel.queue_declare(queue="q"), errors.ChannelError)
        close = failure.value.args[0]
        self.assertEqual((close.method.klass.name, close.method.name), ("connection", "close"))
        self.assertEqual(close.reply_code, 504)
        [sent] = self.broker.sent()
        self.assertEqual((sent.NAME, sent.reply_code), ("connection.close", 504))
        self.failureResultOf(waiting, Closed)
        self.assertTrue(self.broker.transport.disconnecting)
        self.failureResultOf(channel.queue_declare(queue="q"), errors.ChannelError)

    def test_used_after_channel_close(self) -> None:
        """
        A call on a channel the application closed with C{channel_close()}
        ends the connection with 504 too; C{channel_open()} before it opens
        the channel again instead.
        """
        channel = open_channel(self.broker)
        d = channel.channel_close()
        self.broker.sent()
        self.broker.reply("channel.close-ok")
        self.successResultOf(d)
        reopened = channel.channel_open()
        self.assertEqual(self.broker.sent_names(), [(1, "channel.open")])
        self.broker.reply("channel.open-ok")
        self.successResultOf(reopened)
        d = channel.channel_close()
        self.broker.reply("channel.close-ok")
        self.successResultOf(d)
        self.broker.sent()
        self.failureResultOf(channel.queue_declare(queue="q"), errors.ChannelError)
        self.assertEqual([m.NAME for m in self.broker.sent()], ["connection.close"])

    def test_opened_on_use(self) -> None:
        """
        With C{open_channels_on_use} (which L{AMQPump} sets), a channel used
        before C{channel_open} is opened first: C{channel.open} goes out, and
        the call follows once the broker opened the channel.
        """
        self.client.open_channels_on_use = True
        channel = self.successResultOf(self.client.channel(1))
        d = channel.queue_declare(queue="q")
        self.assertEqual(self.broker.sent_names(), [(1, "channel.open")])
        self.broker.reply("channel.open-ok")
        self.assertEqual(self.broker.sent_names(), [(1, "queue.declare")])
        self.broker.reply("queue.declare-ok", queue="q", message_count=0, consumer_count=0)
        self.assertEqual(self.successResultOf(d).queue, "q")

    def test_broker_closes_channel(self) -> None:
        """
        A C{channel.close} from the broker fails the calls with the typed
        error, a L{Closed} whose C{args[0]} is the close as a txAMQP
        message; the delegate's C{channel_close} gets that message, the
        channel reads as closed with it as C{reason}, and later calls fail
        at once.
        """
        delegate = RecordingDelegate()
        broker = connect(delegate=delegate)
        channel = open_channel(broker)
        d = channel.queue_declare(queue="missing", passive=True)
        broker.frames_sent()
        broker.reply(
            "channel.close", reply_code=404, reply_text="NOT_FOUND", class_id=50, method_id=10
        )
        failure = self.failureResultOf(d, Closed)
        self.assertIsInstance(failure.value, errors.NotFound)
        message = failure.value.args[0]
        self.assertEqual((message.method.klass.name, message.method.name), ("channel", "close"))
        self.assertEqual((message.reply_code, message.fields[0]), (404, 404))
        [(on, closed)] = delegate.handled("channel_close")
        self.assertIs(on, channel)
        self.assertEqual(closed.reply_text, "NOT_FOUND")
        self.assertTrue(channel.closed)
        self.assertEqual(channel.reason.reply_code, 404)
        self.assertEqual(broker.sent_names(), [(1, "channel.close-ok")])
        self.failureResultOf(channel.queue_declare(queue="q"), errors.NotFound)
        self.assertEqual(broker.sent(), [])

    def test_reopen_after_broker_close(self) -> None:
        """
        A channel the broker closed is opened again by C{channel_open} on
        the same L{AMQChannel}, with a new modern L{Channel} underneath.
        """
        channel = open_channel(self.broker)
        first = channel.channel
        self.broker.reply("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED")
        self.assertEqual(self.broker.sent_names(), [(1, "channel.close-ok")])
        self.assertTrue(channel.closed)
        d = channel.channel_open()
        self.assertEqual(self.broker.sent_names(), [(1, "channel.open")])
        self.broker.reply("channel.open-ok")
        self.assertEqual(self.successResultOf(d).method.name, "open-ok")
        self.assertFalse(channel.closed)
        self.assertIsNot(channel.channel, first)
        self.assertIs(self.successResultOf(self.client.channel(1)), channel)

    def test_publish_content(self) -> None:
        """
        C{basic_publish(content=Content(...))} sends the content's body (a
        C{str} as UTF-8) and properties, named in any spelling.
        """
        channel = open_channel(self.broker)
        content = Content("h\u00e9llo", properties={"content type": "text/plain"})
        content["delivery-mode"] = 2
        self.assertIsNone(
            self.successResultOf(channel.basic_publish(routing_key="q", content=content))
        )
        frames = self.broker.frames_sent()
        [method] = [item for kind, _, item in frames if kind == _frames.FRAME_METHOD]
        [(_, size, properties)] = [item for kind, _, item in frames if kind == _frames.FRAME_HEADER]
        body = b"".join(item for kind, _, item in frames if kind == _frames.FRAME_BODY)
        self.assertEqual((method.NAME, method.routing_key), ("basic.publish", "q"))
        self.assertEqual(body, "h\u00e9llo".encode())
        self.assertEqual(size, len(body))
        self.assertEqual((properties.content_type, properties.delivery_mode), ("text/plain", 2))

    def test_connection_close_on_channel_zero(self) -> None:
        """
        C{(yield client.channel(0)).connection_close()} closes the
        connection as C{client.close()} does: C{connection.close} goes out,
        the transport is dropped, and it fires once the transport is gone.
        """
        zero = self.successResultOf(self.client.channel(0))
        d = zero.connection_close(reply_text="bye")
        [close] = self.broker.sent()
        self.assertEqual((close.NAME, close.reply_text), ("connection.close", "bye"))
        self.assertTrue(self.broker.transport.disconnecting)
        self.broker.lose()
        reply = self.successResultOf(d)
        self.assertEqual(reply.method.name, "close-ok")


class DeliveryTests(SynchronousTestCase):
    """
    Consumers, C{basic_get} and returned messages, the txAMQP way: through
    the delegate, C{client.queue(tag)} and C{client.basic_return_queue}.
    """

    def consume(self, broker: Broker, channel: AMQChannel, tag: str = "ctag") -> TxMessage:
        """
        Start a consumer on queue C{q} and answer it with C{tag}.

        @return: the C{consume-ok} message the call fired with.
        """
        d = channel.basic_consume(queue="q")
        [consume] = broker.sent()
        self.assertEqual((consume.NAME, consume.queue), ("basic.consume", "q"))
        broker.reply("basic.consume-ok", consumer_tag=tag)
        reply = self.successResultOf(d)
        self.assertEqual((reply.method.name, reply.consumer_tag), ("consume-ok", tag))
        return reply

    def returned(self, broker: Broker) -> None:
        """
        The broker returns a message (C{basic.return}) on channel 1.
        """
        broker.send(broker.frames.returned(1, b"back", "ex", "nowhere"))

    def test_queue(self) -> None:
        """
        Deliveries to a consumer go to C{client.queue(consumer_tag)} as
        txAMQP messages: C{content.body} (bytes), properties by any
        spelling, fields by name and position.
        """
        broker = connect()
        channel = open_channel(broker)
        self.consume(broker, channel)
        queue = self.successResultOf(broker.client.queue("ctag"))
        self.assertIs(self.successResultOf(broker.client.queue("ctag")), queue)
        pending = queue.get()
        broker.deliver("ctag", 7, b"one", properties={"delivery_mode": 2})
        broker.deliver("ctag", 8, b"two")
        message = self.successResultOf(pending)
        self.assertIsInstance(message, TxMessage)
        self.assertEqual((message.method.klass.name, message.method.name), ("basic", "deliver"))
        self.assertEqual(message.content.body, b"one")
        self.assertEqual(message.content["delivery-mode"], 2)
        self.assertEqual((message.delivery_tag, message.consumer_tag), (7, "ctag"))
        self.assertEqual(message[0], "ctag")
        self.assertIs(message[len(message)], message.content)
        self.assertEqual(self.successResultOf(queue.get()).content.body, b"two")

    def test_delegate(self) -> None:
        """
        A delegate overriding C{basic_deliver} and C{basic_return_} gets the
        deliveries and returned messages, with the L{AMQChannel}; nothing
        reaches C{client.queue(tag)} or C{basic_return_queue} then.
        """
        delegate = RecordingDelegate()
        broker = connect(delegate=delegate)
        self.assertIs(delegate.client, broker.client)
        self.assertIs(broker.client.delegate, delegate)
        channel = open_channel(broker)
        self.consume(broker, channel)
        broker.deliver("ctag", 9, b"mine")
        [(on, message)] = delegate.handled("basic_deliver")
        self.assertIs(on, channel)
        self.assertEqual((message.content.body, message.delivery_tag), (b"mine", 9))
        self.returned(broker)
        [(on, message)] = delegate.handled("basic_return_")
        self.assertIs(on, channel)
        self.assertEqual((message.content.body, message.reply_code), (b"back", 312))
        self.assertEqual(len(broker.client.basic_return_queue), 0)
        self.assertNoResult(self.successResultOf(broker.client.queue("ctag")).get())

    def test_unclaimed_delivery_to_delegate(self) -> None:
        """
        A delivery for a consumer tag the channel does not know goes to the
        delegate's C{basic_deliver}, as txAMQP gave it every delivery, and
        so to C{client.queue(tag)} with the default delegate.
        """
        broker = connect()
        open_channel(broker)
        broker.deliver("nobody", 3, b"stray")
        queue = self.successResultOf(broker.client.queue("nobody"))
        message = self.successResultOf(queue.get())
        self.assertEqual((message.content.body, message.delivery_tag), (b"stray", 3))

    def test_return_queue(self) -> None:
        """
        With the default delegate a returned message goes to
        C{client.basic_return_queue} as a txAMQP message.
        """
        broker = connect()
        open_channel(broker)
        self.returned(broker)
        message = self.successResultOf(broker.client.basic_return_queue.get())
        self.assertEqual((message.method.klass.name, message.method.name), ("basic", "return"))
        self.assertEqual((message.reply_text, message.routing_key), ("NO_ROUTE", "nowhere"))
        self.assertEqual(message.content.body, b"back")

    def test_basic_get(self) -> None:
        """
        C{basic_get} fires with the C{get-ok} message, its content attached,
        or with the C{get-empty} message.
        """
        broker = connect()
        channel = open_channel(broker)
        d = channel.basic_get(queue="q", no_ack=True)
        broker.send(broker.frames.get_ok(1, b"got"))
        message = self.successResultOf(d)
        self.assertEqual(message.method.name, "get-ok")
        self.assertEqual((message.content.body, message.delivery_tag), (b"got", 3))
        self.assertEqual(message.message_count, 4)
        empty = channel.basic_get(queue="q")
        broker.reply("basic.get-empty")
        self.assertEqual(self.successResultOf(empty).method.name, "get-empty")

    def test_broker_cancels_consumer(self) -> None:
        """
        A C{basic.cancel} from the broker closes C{client.queue(tag)}: a
        waiting C{get} fails with L{ConsumerCancelled}, a queue L{Closed};
        the delegate is told of the cancel.
        """
        delegate = RecordingDelegate()
        broker = connect(delegate=delegate)
        channel = open_channel(broker)
        self.consume(broker, channel)
        queue = self.successResultOf(broker.client.queue("ctag"))
        waiting = queue.get()
        broker.reply("basic.cancel", consumer_tag="ctag", no_wait=True)
        failure = self.failureResultOf(waiting, QueueClosed)
        self.assertIsInstance(failure.value, ConsumerCancelled)
        self.failureResultOf(queue.get(), QueueClosed)
        [(on, message)] = delegate.handled("basic_cancel")
        self.assertIs(on, channel)
        self.assertEqual(message.consumer_tag, "ctag")

    def test_client_cancel_keeps_queue(self) -> None:
        """
        C{basic_cancel} fires with the C{cancel-ok} message and, as with
        txAMQP, leaves C{client.queue(tag)} open: messages delivered before
        the cancel can still be taken, and a C{get} waits.
        """
        broker = connect()
        channel = open_channel(broker)
        self.consume(broker, channel)
        broker.deliver("ctag", 1, b"early")
        d = channel.basic_cancel(consumer_tag="ctag")
        [cancel] = broker.sent()
        self.assertEqual((cancel.NAME, cancel.consumer_tag), ("basic.cancel", "ctag"))
        broker.reply("basic.cancel-ok", consumer_tag="ctag")
        self.assertEqual(self.successResultOf(d).method.name, "cancel-ok")
        queue = self.successResultOf(broker.client.queue("ctag"))
        self.assertEqual(self.successResultOf(queue.get()).content.body, b"early")
        self.assertNoResult(queue.get())

    def test_channel_close_closes_queues(self) -> None:
        """
        A channel closed by the broker closes its consumers' queues with
        its error.
        """
        broker = connect()
        channel = open_channel(broker)
        self.consume(broker, channel)
        queue = self.successResultOf(broker.client.queue("ctag"))
        broker.reply("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED")
        failure = self.failureResultOf(queue.get(), QueueClosed)
        self.assertIsInstance(failure.value.reason, errors.PreconditionFailed)


class CloseTests(SynchronousTestCase):
    """
    The connection ends: txAMQP's immediate C{close()}, the polite
    C{close(within=...)}, a close by the broker, a lost transport.
    """

    def test_close_immediate(self) -> None:
        """
        C{close()} (C{within=0}, as with txAMQP) sends C{connection.close},
        fails every call and queue at once with L{errors.ConnectionClosed},
        and drops the transport without waiting for C{close-ok}; it fires
        once the transport is gone, and no timer is left.
        """
        broker = connect()
        channel = open_channel(broker)
        declare = channel.queue_declare(queue="q")
        queue = self.successResultOf(broker.client.queue("ctag"))
        waiting = queue.get()
        broker.frames_sent()
        d = broker.client.close("bye")
        [close] = broker.sent()
        self.assertEqual((close.NAME, close.reply_text), ("connection.close", "bye"))
        self.assertTrue(broker.transport.disconnecting)
        self.failureResultOf(declare, errors.ConnectionClosed)
        self.failureResultOf(waiting, QueueClosed)
        self.failureResultOf(broker.client.basic_return_queue.get(), QueueClosed)
        self.assertTrue(channel.closed)
        self.assertNoResult(d)
        broker.lose()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(broker.clock.getDelayedCalls(), [])

    def test_close_within(self) -> None:
        """
        C{close(within=n)} closes politely: it waits for C{close-ok}, and
        aborts the transport after C{n} seconds without one.
        """
        broker = connect()
        d = broker.client.close(within=2)
        self.assertEqual(broker.sent_names(), [(0, "connection.close")])
        self.assertFalse(broker.transport.disconnecting)
        broker.clock.advance(1.9)
        self.assertFalse(broker.transport.aborted)
        broker.clock.advance(0.1)
        self.assertTrue(broker.transport.aborted)
        broker.lose(ConnectionLost)
        self.successResultOf(d)

    def test_close_within_close_ok(self) -> None:
        """
        A polite close ends when the broker's C{close-ok} comes and the
        transport is gone.
        """
        broker = connect()
        d = broker.client.close(within=5)
        broker.reply("connection.close-ok", 0)
        self.assertTrue(broker.transport.disconnecting)
        self.assertFalse(broker.transport.aborted)
        broker.lose()
        self.successResultOf(d)
        self.assertEqual(broker.clock.getDelayedCalls(), [])

    def test_broker_closes_connection(self) -> None:
        """
        A C{connection.close} from the broker fails the calls with the
        typed error, whose C{args[0]} is the close as a txAMQP message; the
        delegate's C{connection_close} gets that message, and its C{close}
        gets it too once the transport is gone.
        """
        delegate = RecordingDelegate()
        broker = connect(delegate=delegate)
        channel = open_channel(broker)
        declare = channel.queue_declare(queue="q")
        broker.frames_sent()
        broker.reply(
            "connection.close", 0, reply_code=320, reply_text="CONNECTION_FORCED - shutdown"
        )
        failure = self.failureResultOf(declare, errors.ConnectionForced)
        message = failure.value.args[0]
        self.assertEqual(
            (message.method.klass.name, message.method.name, message.reply_code),
            ("connection", "close", 320),
        )
        [(on, told)] = delegate.handled("connection_close")
        self.assertEqual(on.id, 0)
        self.assertEqual(told.reply_text, "CONNECTION_FORCED - shutdown")
        self.assertEqual(broker.sent_names(), [(0, "connection.close-ok")])
        self.assertEqual(delegate.closed, [])
        broker.lose()
        [reason] = delegate.closed
        self.assertEqual(reason.reply_code, 320)

    def test_delegate_close_when_lost(self) -> None:
        """
        A delegate's C{close} is called once the transport is gone, with
        the L{Failure} of the lost connection, and the delegate knows its
        client.
        """
        delegate = RecordingDelegate()
        broker = connect(delegate=delegate)
        self.assertIs(delegate.client, broker.client)
        broker.lose(ConnectionLost)
        [reason] = delegate.closed
        self.assertIsInstance(reason, Failure)
        self.assertIsInstance(reason.value, ConnectionLost)


class ContentTests(SynchronousTestCase):
    """
    txAMQP's L{Content} and its properties.
    """

    def test_properties_compare_by_any_spelling(self) -> None:
        """
        Received properties equal a mapping keyed the spec's way (txAMQP
        keyed them C{"delivery-mode"}, 0-8's C{"delivery mode"}) or the
        Python way, and nothing else.
        """
        content = Content(b"x", properties={"delivery_mode": 2, "reply_to": "r"})
        self.assertEqual(content.properties, {"delivery-mode": 2, "reply-to": "r"})
        self.assertEqual({"delivery mode": 2, "reply to": "r"}, content.properties)
        self.assertEqual(content.properties, {"delivery_mode": 2, "reply_to": "r"})
        self.assertNotEqual(content.properties, {"delivery-mode": 1, "reply-to": "r"})
        self.assertNotEqual(content.properties, {"delivery-mode": 2})
        self.assertNotEqual(content.properties, [("delivery-mode", 2)])


class NotifyingDelegate(RecordingDelegate):
    """
    A delegate that also records the handshake and C{channel.flow}, calling
    C{super()} as txAMQP applications do.
    """

    def connection_start(self, ch: Any, msg: Any) -> None:
        self.calls.append(("connection_start", ch, msg))
        super().connection_start(ch, msg)

    def connection_tune(self, ch: Any, msg: Any) -> None:
        self.calls.append(("connection_tune", ch, msg))
        super().connection_tune(ch, msg)

    def channel_flow(self, ch: Any, msg: Any) -> None:
        self.calls.append(("channel_flow", ch, msg))
        super().channel_flow(ch, msg)


class DelegateTests(SynchronousTestCase):
    """
    What the delegate hears of: the handshake, C{channel.flow}, and any
    other method the broker sends on its own through C{dispatch}.
    """

    def test_handshake(self) -> None:
        """
        C{connection_start} gets the broker's start (its server properties)
        on channel 0 and C{connection_tune} its tune; the client has
        answered both itself.
        """
        delegate = NotifyingDelegate()
        broker = connect(delegate=delegate)
        [(ch0, start)] = delegate.handled("connection_start")
        [(_, tune)] = delegate.handled("connection_tune")
        self.assertEqual(ch0.id, 0)
        self.assertEqual((start.method.klass.name, start.method.name), ("connection", "start"))
        self.assertEqual(start.server_properties["product"], "RabbitMQ")
        self.assertEqual(tune.frame_max, 131072)
        self.assertIsNone(broker.client.closed)

    def test_channel_flow(self) -> None:
        """
        C{channel_flow} hears of the broker pausing a channel, which the
        client has answered with C{flow-ok}.
        """
        delegate = NotifyingDelegate()
        broker = connect(delegate=delegate)
        channel = open_channel(broker)
        broker.reply("channel.flow", active=False)
        [(on, flow)] = delegate.handled("channel_flow")
        self.assertIs(on, channel)
        self.assertIs(flow.active, False)
        [flow_ok] = broker.sent()
        self.assertEqual((flow_ok.NAME, flow_ok.active), ("channel.flow-ok", False))

    def test_dispatch_other_methods(self) -> None:
        """
        A method the broker sends on its own goes to the handler named
        after it (C{basic_cancel}); with no such handler it is ignored, and
        the connection goes on (txAMQP ended it with an C{AttributeError}).
        """
        delegate = RecordingDelegate()
        broker = connect(delegate=delegate)
        open_channel(broker)
        broker.reply("basic.cancel", consumer_tag="gone")
        [(_, cancel)] = delegate.handled("basic_cancel")
        self.assertEqual(cancel.consumer_tag, "gone")
        plain = connect()
        open_channel(plain)
        plain.reply("basic.cancel", consumer_tag="gone")
        self.assertIsNone(plain.client.closed)


class SpyClient(AMQClient):
    """
    txAMQP's heartbeat test subclass: counts the heartbeat hooks it is
    called through.
    """

    sent_heartbeats = 0
    checks = 0

    def send_heartbeat(self) -> None:
        super().send_heartbeat()
        self.sent_heartbeats += 1

    def reschedule_check_heartbeat(self) -> None:
        super().reschedule_check_heartbeat()
        self.checks += 1


class HeartbeatHookTests(SynchronousTestCase):
    """
    txAMQP's heartbeat hooks, for subclasses that override them.
    """

    def test_hooks_called(self) -> None:
        """
        Heartbeats go out through C{send_heartbeat} and each chunk received
        goes through C{reschedule_check_heartbeat}, so a subclass that counts
        them (as txAMQP's heartbeat test does) sees both.
        """
        broker = Broker(cls=SpyClient, credentials=None, heartbeat=1)
        client = broker.client
        assert isinstance(client, SpyClient)
        d = client.authenticate("guest", "guest")
        broker.handshake(heartbeat=1)
        broker.successResult(d)
        self.assertEqual(client.heartbeatInterval, 1)
        checks = client.checks
        self.assertGreater(checks, 0)
        broker.clock.advance(1)
        self.assertGreater(client.sent_heartbeats, 0)
        self.assertIn(_frames.HEARTBEAT, broker.transport.value())
        broker.send(_frames.HEARTBEAT)
        self.assertEqual(client.checks, checks + 1)

    def test_send_heartbeat_anytime(self) -> None:
        """
        C{send_heartbeat()} sends one heartbeat frame at once, even with
        heartbeats off.
        """
        broker = connect()
        broker.frames_sent()
        broker.client.send_heartbeat()
        self.assertEqual(broker.transport.value(), _frames.HEARTBEAT)


class ClientMembersTests(SynchronousTestCase):
    """
    The rest of txAMQP's C{AMQClient}.
    """

    def test_check_0_8(self) -> None:
        """
        C{check_0_8()} says whether the spec is 0-8.
        """
        self.assertFalse(AMQClient().check_0_8())
        path = "/usr/share/amqp/specs/0-8/amqp0-8.stripped.xml"
        if not os.path.exists(path):
            self.fail(f"{path} is missing: apt-get install amqp-specs")
        self.assertTrue(AMQClient(spec=path).check_0_8())

    def test_do_close(self) -> None:
        """
        C{do_close(reason)} ends the connection at once: calls fail with a
        C{Closed} carrying the reason, queues close, the transport is
        dropped.
        """
        broker = connect()
        channel = open_channel(broker)
        declare = channel.queue_declare(queue="q")
        queue = self.successResultOf(broker.client.queue("t")).get()
        broker.client.do_close("going away")
        failure = self.failureResultOf(declare, Closed)
        self.assertEqual(failure.value.args[0], "going away")
        self.failureResultOf(queue, QueueClosed)
        self.assertTrue(broker.transport.disconnecting)


class FactoryTests(SynchronousTestCase):
    """
    txAMQP's C{AMQFactory} and C{DEFAULT_SPEC}.
    """

    def test_defaults(self) -> None:
        """
        A client from a default factory has a new L{TwistedDelegate}, vhost
        C{/}, no heartbeat asked for, and the spec at C{DEFAULT_SPEC}, the
        packaged 0-9-1; nothing is scheduled.
        """
        clock = Clock()
        factory = AMQFactory(clock=clock)
        one, two = factory.buildProtocol(None), factory.buildProtocol(None)
        self.assertIsInstance(one, AMQClient)
        self.assertIsInstance(one.delegate, TwistedDelegate)
        self.assertIsNot(one.delegate, two.delegate)
        self.assertEqual((one.vhost, one.heartbeatInterval), ("/", 0))
        self.assertEqual(one.spec.file, DEFAULT_SPEC)
        self.assertIs(one.spec, load())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_custom(self) -> None:
        """
        C{set_vhost} and C{set_heartbeat} reach the clients; asking for a
        heartbeat schedules txAMQP's check for a silent peer.
        """
        clock = Clock()
        path = "/usr/share/amqp/specs/0-9/amqp0-9.stripped.xml"
        if not os.path.exists(path):
            self.fail(f"{path} is missing: apt-get install amqp-specs")
        factory = AMQFactory(spec=path, clock=clock)
        factory.set_vhost("foo")
        factory.set_heartbeat(1)
        client = factory.buildProtocol(None)
        self.assertEqual((client.vhost, client.heartbeatInterval), ("foo", 1))
        self.assertEqual(client.spec.file, path)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
