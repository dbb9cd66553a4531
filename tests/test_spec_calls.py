# -*- test-case-name: tests.test_spec_calls -*-
"""
Every method of the loaded spec that a client may send on a channel is
callable on a L{Channel} by its PEP 8 name with keyword arguments, goes out
on the wire, and fires as documented: with the broker's reply for a
synchronous method, at once with C{None} for the others and with
C{no_wait=True}; and so for the packaged spec and each of Debian's 0-8, 0-9,
0-9-1 and 0-9-1-rabbit files.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import Broker
from txamqp_next import errors
from txamqp_next.channel import Channel, ConsumerCancelled
from txamqp_next.spec import MethodSpec, load

#: the packaged spec and Debian's files (package amqp-specs)
SPECS = (
    "0-9-1",
    "/usr/share/amqp/specs/0-8/amqp0-8.stripped.xml",
    "/usr/share/amqp/specs/0-9/amqp0-9.stripped.xml",
    "/usr/share/amqp/specs/0-9-1/amqp0-9-1.stripped.xml",
    "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml",
)

# what the broker's reply turns into, where it is not the reply method
_RESULTS = {
    "channel.open": "Channel",
    "basic.consume": "Consumer",
    "basic.get": "NoneType",  # get-empty
}

# fields some calls need (a consumer tag to cancel, or to consume with no_wait)
_FIELDS: dict[str, dict[str, Any]] = {
    "basic.cancel": {"consumer_tag": "tag"},
    "basic.consume": {"consumer_tag": "tag"},
}


def client_methods(spec_name: str) -> list[MethodSpec]:
    """
    The methods a client sends on a channel (the server's chassis); the
    connection class runs on channel 0 and is covered by the handshake,
    C{close} and C{update_secret}.
    """
    return [
        m
        for m in load(spec_name).methods
        if "server" in m.chassis and m.class_name != "connection" and not m.name.endswith("-ok")
    ]


class SpecCallTests(SynchronousTestCase):
    """
    One call per method of the spec.
    """

    def call(
        self, spec_name: str, method: MethodSpec, **fields: Any
    ) -> tuple[Broker, Channel, Any, list[str]]:
        """
        Call C{method} on channel 1 of a fresh connection (a channel not
        opened yet for C{channel.open}) with C{fields}.

        @return: the broker, the channel, the call's L{Deferred} and the
            names of the methods the client sent.
        """
        broker = Broker(spec=load(spec_name))
        broker.handshake()
        if method.full_name == "channel.open":
            channel = broker.client.new_channel(1)
        else:
            channel = broker.open_channel(1)
        function = getattr(channel, method.python_name)
        for key, value in _FIELDS.get(method.full_name, {}).items():
            fields.setdefault(key, value)
        if method.content:
            fields.setdefault("body", b"x")
        d = function(**fields)
        return broker, channel, d, [m.NAME for m in broker.sent()]

    def test_every_method_callable(self) -> None:
        """
        Each method sends itself; a synchronous one waits for its reply and
        fires with it (or with what it stands for: the channel, the
        consumer, the message); an asynchronous one fires with None at once.
        """
        checked = []
        for spec_name in SPECS:
            for method in client_methods(spec_name):
                with self.subTest(spec=spec_name, method=method.full_name):
                    broker, _, d, sent = self.call(spec_name, method)
                    self.assertEqual(sent, [method.full_name])
                    if not method.synchronous or not method.responses:
                        self.assertIsNone(self.successResultOf(d))
                        continue
                    self.assertNoResult(d)
                    # get-ok carries content; get-empty is the reply alone
                    reply = f"{method.class_name}.{method.responses[-1]}"
                    reply_fields = _FIELDS.get(method.full_name, {})
                    expected = _RESULTS.get(method.full_name)
                    if broker.client.spec.method(reply).content:
                        # a reply with content (0-8's test.content-ok)
                        broker.send(broker.frames.content(1, reply, b"", **reply_fields))
                        expected = "Message"
                    else:
                        broker.reply(reply, 1, **reply_fields)
                    result = self.successResultOf(d)
                    if expected is None:
                        self.assertEqual(result.NAME, reply)
                    else:
                        self.assertEqual(type(result).__name__, expected)
                    checked.append(method.full_name)
        # a spec change that hid every method from this test would show here
        self.assertIn("queue.declare", checked)
        self.assertIn("basic.consume", checked)
        self.assertGreater(len(checked), 20)

    def test_no_wait_everywhere(self) -> None:
        """
        Every method with a no_wait field sends itself and fires with None at
        once when it is true: nothing waits for a reply that will not come.
        """
        found = []
        for spec_name in SPECS:
            for method in client_methods(spec_name):
                if "no_wait" not in [f.name for f in method.fields]:
                    continue
                with self.subTest(spec=spec_name, method=method.full_name):
                    broker, channel, d, sent = self.call(spec_name, method, no_wait=True)
                    self.assertEqual(sent, [method.full_name])
                    result = self.successResultOf(d)
                    if method.full_name == "basic.consume":
                        self.assertEqual(type(result).__name__, "Consumer")
                    else:
                        self.assertIsNone(result)
                    # the channel is free for the next call at once
                    follow = channel.basic_qos(prefetch_count=1)
                    self.assertEqual([m.NAME for m in broker.sent()], ["basic.qos"])
                    broker.reply("basic.qos-ok", 1)
                    self.successResultOf(follow)
                    found.append(method.full_name)
        self.assertGreater(len(found), 8)


D08 = "/usr/share/amqp/specs/0-8/amqp0-8.stripped.xml"
D09 = "/usr/share/amqp/specs/0-9/amqp0-9.stripped.xml"
D091 = "/usr/share/amqp/specs/0-9-1/amqp0-9-1.stripped.xml"


class SpecFollowingTests(SynchronousTestCase):
    """
    The hand-written channel methods send what the loaded spec defines.
    """

    def broker(self, path: str) -> tuple[Broker, Channel]:
        broker = Broker(spec=load(path))
        broker.handshake()
        return broker, broker.open_channel(1)

    def test_consume_without_arguments(self) -> None:
        """
        With 0-8, which has no C{arguments} in C{basic.consume}, a consumer
        starts (the empty default is dropped); arguments with a value are a
        C{TypeError} naming the spec, and nothing is sent.
        """
        broker, channel = self.broker(D08)
        d = channel.basic_consume(queue="q", arguments={})
        [consume] = broker.sent()
        self.assertEqual(consume.field_names[-1], "no_wait")
        self.assertEqual(consume.queue, "q")
        broker.reply("basic.consume-ok", consumer_tag="t")
        self.assertEqual(self.successResultOf(d).consumer_tag, "t")
        error = self.assertRaises(
            TypeError, channel.basic_consume, queue="q", arguments={"x-priority": 1}
        )
        self.assertIn(D08, str(error))
        self.assertIn("arguments", str(error))
        self.assertEqual(broker.sent(), [])

    def test_spec_own_fields(self) -> None:
        """
        A spec's own fields pass through the hand-written methods: 0-9's
        C{filter} on C{basic.consume}, 0-8's C{ticket} on C{basic.publish}.
        """
        broker, channel = self.broker(D09)
        channel.basic_consume(queue="q", consumer_tag="t", filter={"k": "v"})
        [consume] = broker.sent()
        self.assertEqual(consume.filter, {"k": "v"})
        broker, channel = self.broker(D08)
        channel.basic_publish(routing_key="q", body=b"x", ticket=7)
        [publish] = broker.sent()
        self.assertEqual((publish.NAME, publish.ticket), ("basic.publish", 7))

    def test_properties_by_spec_names(self) -> None:
        """
        With 0-8, properties given the spec's way (C{"reply to"},
        C{"delivery mode"}) or the Python way reach the header; a property
        the spec lacks, with a value, is a C{TypeError} naming the spec.
        """
        broker, channel = self.broker(D08)
        channel.basic_publish(
            routing_key="q", body=b"x", properties={"reply to": "r", "delivery_mode": 2}
        )
        frames = broker.frames_sent()
        [(_, size, properties)] = [item for kind, _, item in frames if kind == 2]
        self.assertEqual((size, properties.reply_to, properties.delivery_mode), (1, "r", 2))
        broker, channel = self.broker(D091)
        error = self.assertRaises(
            TypeError, channel.basic_publish, routing_key="q", properties={"cluster_id": "c"}
        )
        self.assertIn(D091, str(error))

    def test_missing_methods(self) -> None:
        """
        With 0-8, C{confirm_select} and a message's C{nack} fail with
        L{LocalProtocolError} naming the spec, and nothing is sent.
        """
        broker, channel = self.broker(D08)
        failure = self.failureResultOf(channel.confirm_select(), errors.LocalProtocolError)
        self.assertIn(D08, str(failure.value))
        self.assertIn("confirm.select", str(failure.value))
        self.assertIsNone(channel.confirms)
        consumer = self.successResultOf(
            channel.basic_consume(queue="q", consumer_tag="t", no_wait=True)
        )
        broker.sent()
        broker.deliver("t", 1)
        message = self.successResultOf(consumer.queue.get())
        failure = self.failureResultOf(message.nack(), errors.LocalProtocolError)
        self.assertIn("basic.nack", str(failure.value))
        self.assertEqual(broker.sent(), [])
        self.successResultOf(message.reject())
        self.assertEqual([m.NAME for m in broker.sent()], ["basic.reject"])

    def test_unknown_method(self) -> None:
        """
        A method no spec has is no attribute of the channel; a typed call of
        the default spec that the loaded spec lacks fails its Deferred; both
        errors name the spec, and nothing is sent.
        """
        broker, channel = self.broker(D08)
        error = self.assertRaises(AttributeError, getattr, channel, "exchange_bindx")
        self.assertIn(D08, str(error))
        failure = self.failureResultOf(
            channel.exchange_bind(destination="d", source="s"), errors.LocalProtocolError
        )
        self.assertIn(D08, str(failure.value))
        self.assertIn("exchange.bind", str(failure.value))
        self.assertEqual(broker.sent(), [])

    def test_broker_cancel_with_plain_0_9_1(self) -> None:
        """
        With the plain 0-9-1 file, which says only clients send
        C{basic.cancel}, the broker's cancel notification ends the consumer.
        """
        broker, channel = self.broker(D091)
        consumer = self.successResultOf(
            channel.basic_consume(queue="q", consumer_tag="t", no_wait=True)
        )
        broker.reply("basic.cancel", consumer_tag="t")
        self.assertIsInstance(consumer.cancelled, ConsumerCancelled)
        self.assertIsNone(broker.client.closed)
