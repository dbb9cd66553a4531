# -*- test-case-name: tests.test_spec_calls -*-
"""
Every method of the loaded spec that a client may send on a channel is
callable on a L{Channel} by its PEP 8 name with keyword arguments, goes out
on the wire, and fires as documented: with the broker's reply for a
synchronous method, at once with C{None} for the others and with
C{no_wait=True}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.test_protocol import Broker
from txamqp_next.channel import Channel
from txamqp_next.spec import MethodSpec, load

SPECS = ("0-9-1",)

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

    def call(self, method: MethodSpec, **fields: Any) -> tuple[Broker, Channel, Any, list[str]]:
        """
        Call C{method} on channel 1 of a fresh connection (a channel not
        opened yet for C{channel.open}) with C{fields}.

        @return: the broker, the channel, the call's L{Deferred} and the
            names of the methods the client sent.
        """
        broker = Broker()
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
                with self.subTest(method=method.full_name):
                    broker, _, d, sent = self.call(method)
                    self.assertEqual(sent, [method.full_name])
                    if not method.synchronous or not method.responses:
                        self.assertIsNone(self.successResultOf(d))
                        continue
                    self.assertNoResult(d)
                    # get-ok carries content; get-empty is the reply alone
                    reply = f"{method.class_name}.{method.responses[-1]}"
                    broker.reply(reply, 1, **_FIELDS.get(method.full_name, {}))
                    result = self.successResultOf(d)
                    expected = _RESULTS.get(method.full_name)
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
                with self.subTest(method=method.full_name):
                    broker, channel, d, sent = self.call(method, no_wait=True)
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
