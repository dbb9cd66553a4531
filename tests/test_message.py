# -*- test-case-name: tests.test_message -*-
"""
Tests for L{txamqp_next.content} (L{Content}, L{PropertyDict}) and
L{txamqp_next.message.Message}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from txamqp_next._methods import methods_for
from txamqp_next.content import Content, PropertyDict
from txamqp_next.message import Message
from txamqp_next.spec import load

METHODS = methods_for(load())
PROPERTIES = METHODS.properties[60]


class PropertyDictTests(SynchronousTestCase):
    """
    L{PropertyDict} treats every spelling of a property name as one key.
    """

    def test_spellings(self) -> None:
        """
        C{"content-type"}, C{"content type"} and C{"content_type"} are one
        key, for reading, writing, membership and deletion.
        """
        props = PropertyDict({"content-type": "text/plain"})
        self.assertEqual(props["content_type"], "text/plain")
        self.assertEqual(props["content type"], "text/plain")
        self.assertEqual(props["Content-Type"], "text/plain")
        self.assertIn("content type", props)
        props["content type"] = "application/json"
        self.assertEqual(len(props), 1)
        self.assertEqual(props["content-type"], "application/json")
        del props["content-type"]
        self.assertNotIn("content_type", props)
        self.assertEqual(len(props), 0)

    def test_iteration_gives_python_names(self) -> None:
        """
        Iterating gives the Python names, whatever spelling was used.
        """
        props = PropertyDict({"delivery mode": 2}, **{"reply_to": "r"})
        props["correlation-id"] = "c"
        self.assertEqual(sorted(props), ["correlation_id", "delivery_mode", "reply_to"])
        self.assertEqual(dict(props), {"delivery_mode": 2, "reply_to": "r", "correlation_id": "c"})

    def test_missing(self) -> None:
        """
        A missing key is a L{KeyError}; C{in} with a non-string is false.
        """
        props = PropertyDict()
        self.assertRaises(KeyError, props.__getitem__, "priority")
        self.assertRaises(KeyError, props.__delitem__, "priority")
        self.assertNotIn(3, props)
        self.assertIsNone(props.get("priority"))

    def test_copy_and_repr(self) -> None:
        """
        C{copy} gives an independent L{PropertyDict}; the repr shows the
        items by Python name.
        """
        props = PropertyDict({"app-id": "me"})
        copy = props.copy()
        self.assertIsInstance(copy, PropertyDict)
        copy["app id"] = "other"
        self.assertEqual(props["app_id"], "me")
        self.assertEqual(repr(props), "PropertyDict({'app_id': 'me'})")


class ContentTests(SynchronousTestCase):
    """
    txAMQP's L{Content}.
    """

    def test_body_bytes(self) -> None:
        """
        A C{str} body is encoded as UTF-8; a C{bytes} or C{bytearray} body is
        given as C{bytes}; C{size} counts bytes.
        """
        self.assertEqual(Content("h\u00e9").body_bytes(), b"h\xc3\xa9")
        self.assertEqual(Content("h\u00e9").size(), 3)
        self.assertEqual(Content(b"raw").body_bytes(), b"raw")
        body = Content(bytearray(b"ba")).body_bytes()  # type: ignore[arg-type]
        self.assertEqual((body, type(body)), (b"ba", bytes))
        self.assertEqual(Content().body_bytes(), b"")

    def test_properties(self) -> None:
        """
        Properties are a L{PropertyDict}, also reachable by item access on
        the content in any spelling.
        """
        content = Content(b"x", properties={"content type": "text/plain"})
        self.assertIsInstance(content.properties, PropertyDict)
        self.assertEqual(content["content-type"], "text/plain")
        self.assertIn("content_type", content)
        content["delivery mode"] = 2
        self.assertEqual(content.properties["delivery_mode"], 2)
        del content["content_type"]
        self.assertNotIn("content-type", content)
        self.assertEqual(dict(content.properties), {"delivery_mode": 2})

    def test_children(self) -> None:
        """
        C{children} and C{weight} are kept for txAMQP code.
        """
        content = Content(b"x")
        self.assertEqual((content.children, content.weight()), ([], 0))

    def test_repr(self) -> None:
        """
        The repr shows the body and the properties by Python name.
        """
        content = Content(b"x", properties={"app-id": "a"})
        self.assertEqual(repr(content), "Content(b'x', properties={'app_id': 'a'})")


class RecordingChannel:
    """
    Stands in for a L{txamqp_next.channel.Channel}: records the calls a
    message makes.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(**fields: Any) -> Deferred[None]:
            self.calls.append((name, fields))
            return succeed(None)

        return call

    def invoke(self, name: str, **fields: Any) -> Deferred[None]:
        """
        A call by the method's full name, recorded under its PEP 8 name.
        """
        self.calls.append((name.replace(".", "_"), fields))
        return succeed(None)


def deliver(channel: Any, body: bytes = b"hello", **properties: Any) -> Message:
    method = METHODS["basic.deliver"](
        consumer_tag="ctag",
        delivery_tag=12,
        redelivered=True,
        exchange="ex",
        routing_key="rk",
    )
    return Message(channel, method, PROPERTIES(**properties), body)


class MessageTests(SynchronousTestCase):
    """
    L{Message}: fields as attributes, properties, acknowledgements, repr.
    """

    def test_fields_as_attributes(self) -> None:
        """
        The method's fields read as attributes of the message.
        """
        message = deliver(RecordingChannel())
        self.assertEqual(message.delivery_tag, 12)
        self.assertEqual(message.consumer_tag, "ctag")
        self.assertEqual(message.routing_key, "rk")
        self.assertEqual(message.exchange, "ex")
        self.assertIs(message.redelivered, True)
        self.assertEqual(message.body, b"hello")
        self.assertEqual(message.method.NAME, "basic.deliver")

    def test_unknown_attribute(self) -> None:
        """
        A name that is not a field is an L{AttributeError} naming the method
        and the attribute.
        """
        message = deliver(RecordingChannel())
        exc = self.assertRaises(AttributeError, getattr, message, "message_count")
        self.assertIn("basic.deliver", str(exc))
        self.assertIn("message_count", str(exc))
        self.assertFalse(hasattr(message, "reply_code"))

    def test_slots(self) -> None:
        """
        A message has no per-instance dict: attributes that are not fields
        cannot be set.
        """
        message = deliver(RecordingChannel())
        self.assertRaises(AttributeError, setattr, message, "extra", 1)

    def test_headers(self) -> None:
        """
        C{headers} is the headers property, or an empty dict.
        """
        self.assertEqual(deliver(RecordingChannel(), headers={"x": 1}).headers, {"x": 1})
        self.assertEqual(deliver(RecordingChannel()).headers, {})

    def test_no_txamqp_members(self) -> None:
        """
        The modern message has none of txAMQP's members: no C{content}, no
        C{fields}, no item access (the compatibility layer hands txAMQP code
        a L{txamqp_next._txmessage.TxMessage} with those instead).
        """
        message = deliver(RecordingChannel(), content_type="text/plain", priority=3)
        for name in ("content", "fields"):
            exc = self.assertRaises(AttributeError, getattr, message, name)
            self.assertIn(repr(name), str(exc))
        self.assertRaises(TypeError, lambda: message[0])  # type: ignore[index]
        self.assertEqual(message.properties.content_type, "text/plain")
        self.assertEqual(message.properties.priority, 3)

    def test_ack_nack_reject(self) -> None:
        """
        C{ack}, C{nack} and C{reject} call the channel with the delivery tag
        and the options given.
        """
        channel = RecordingChannel()
        message = deliver(channel)
        self.assertIsNone(self.successResultOf(message.ack()))
        message.ack(multiple=True)
        message.nack()
        message.nack(requeue=False, multiple=True)
        message.reject()
        message.reject(requeue=False)
        self.assertEqual(
            channel.calls,
            [
                ("basic_ack", {"delivery_tag": 12, "multiple": False}),
                ("basic_ack", {"delivery_tag": 12, "multiple": True}),
                ("basic_nack", {"delivery_tag": 12, "multiple": False, "requeue": True}),
                ("basic_nack", {"delivery_tag": 12, "multiple": True, "requeue": False}),
                ("basic_reject", {"delivery_tag": 12, "requeue": True}),
                ("basic_reject", {"delivery_tag": 12, "requeue": False}),
            ],
        )

    def test_repr(self) -> None:
        """
        The repr names the method and properties and gives the body's size,
        not the body.
        """
        message = deliver(RecordingChannel(), body=b"secret body", content_type="text/plain")
        text = repr(message)
        self.assertTrue(text.startswith("<Message Basic.Deliver("), text)
        self.assertIn("delivery_tag=12", text)
        self.assertIn("content_type='text/plain'", text)
        self.assertIn("body=11 bytes", text)
        self.assertNotIn("secret body", text)

    def test_returned_message(self) -> None:
        """
        A returned message reads the C{basic.return} fields.
        """
        method = METHODS["basic.return"](
            reply_code=312, reply_text="NO_ROUTE", exchange="ex", routing_key="nowhere"
        )
        message = Message(RecordingChannel(), method, PROPERTIES(), b"")
        self.assertEqual((message.reply_code, message.reply_text), (312, "NO_ROUTE"))
        self.assertRaises(AttributeError, getattr, message, "delivery_tag")
