# -*- test-case-name: tests.test_methods -*-
"""
Tests for L{txamqp_next._methods}: the generated method and properties
classes (construction, immutability, equality, repr, errors) and a
Hypothesis round trip of every method and every properties class of every
spec we load.
"""

from __future__ import annotations

import pathlib
import struct
from datetime import datetime, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txamqp_next import spec
from txamqp_next._methods import Method, MethodSet, Properties, methods_for
from txamqp_next.errors import LocalProtocolError

REFERENCE_DIR = pathlib.Path("/usr/share/amqp/specs")

# The 0-8, 0-9 and 0-9-1 files of Debian's amqp-specs package.
REFERENCE_FILES = (
    "0-8/amqp0-8.stripped.xml",
    "0-8-qpid/amqp0-8-qpid.stripped.xml",
    "0-9/amqp0-9.stripped.xml",
    "0-9-qpid/amqp0-9-qpid.stripped.xml",
    "0-9-1/amqp0-9-1.stripped.xml",
    "0-9-1-qpid/amqp0-9-1.stripped.xml",
    "0-9-1-rabbit/amqp0-9-1.stripped.extended.xml",
)


def reference_spec(name: str) -> spec.Spec:
    """
    Load one of Debian's reference spec files, failing with instructions
    when the package is missing.
    """
    path = REFERENCE_DIR / name
    if not path.exists():
        raise AssertionError(
            f"{path} is missing: install Debian's reference specs with 'apt-get install amqp-specs'"
        )
    return spec.load(path)


#: Every spec the round trips cover: the reference files and our default.
SPEC_NAMES = (*REFERENCE_FILES, "0-9-1")


def load_spec(name: str) -> spec.Spec:
    """
    A reference file by its name in L{REFERENCE_FILES}, or our default spec
    for C{"0-9-1"}.
    """
    return spec.load("0-9-1") if name == "0-9-1" else reference_spec(name)


def default_methods() -> MethodSet:
    return methods_for(spec.load("0-9-1"))


# ---------------------------------------------------------------------------
# Hypothesis strategies, one per wire type


def _utf8_at_most_255(text: str) -> str:
    """
    Cut C{text} so its UTF-8 encoding is at most 255 bytes, on a character
    boundary.
    """
    return text.encode()[:255].decode("utf-8", "ignore")


shortstrs = st.text(max_size=255).map(_utf8_at_most_255)

table_keys = st.text(max_size=40).map(_utf8_at_most_255)

decimals = st.builds(
    lambda unscaled, scale: Decimal(unscaled).scaleb(-scale),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 12),
)

utc_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(timezone.utc),
).map(lambda d: d.replace(microsecond=0))

table_leaves = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.none(),
    decimals,
    utc_datetimes,
)

table_values = st.recursive(
    table_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(table_keys, children, max_size=4)
    ),
    max_leaves=12,
)

tables = st.dictionaries(table_keys, table_values, max_size=5)

WIRE_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "octet": st.integers(0, 2**8 - 1),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**64 - 1),
    "timestamp": st.integers(0, 2**64 - 1),
    "bit": st.booleans(),
    "shortstr": shortstrs,
    "longstr": st.binary(max_size=300),
    "table": tables,
}


def method_strategy(cls: type[Method]) -> st.SearchStrategy[Method]:
    """
    Instances of C{cls} with every public field drawn for its wire type.
    """
    fields = {f.name: WIRE_STRATEGIES[f.type] for f in cls.SPEC.fields if not f.reserved}
    return st.builds(cls, **fields)


def properties_strategy(
    cls: type[Properties], types: dict[str, str]
) -> st.SearchStrategy[Properties]:
    """
    Instances of C{cls} with any subset of the properties set.  A C{bit}
    property has no "absent" distinct from C{False}, so it is always drawn.
    """
    fields = {
        name: WIRE_STRATEGIES[t] if t == "bit" else st.none() | WIRE_STRATEGIES[t]
        for name, t in types.items()
    }
    return st.builds(cls, **fields)


def typed(value: Any) -> Any:
    """
    C{value} with the type of every item made part of it, so that a
    comparison also tells C{True} from C{1}, C{"a"} from C{b"a"} and a
    C{Decimal} from a C{float}.
    """
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, value)


def typed_fields(item: Method | Properties) -> list[tuple[str, Any]]:
    return [(name, typed(value)) for name, value in item.items()]


# Each (spec, method) pair gets its own small Hypothesis run, more for the
# spec we ship; the numbers keep the whole module well under 30 seconds.  The
# example database is off: hundreds of tiny runs would each read and write it.
def _round_trip_settings(spec_name: str, ours: int, theirs: int) -> settings:
    return settings(
        max_examples=ours if spec_name == "0-9-1" else theirs,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


class ConstructionTests(SynchronousTestCase):
    """
    Building method objects: keyword-only, defaults per wire type, fresh
    mutable defaults, and a clear error for an unknown field.
    """

    def setUp(self) -> None:
        self.ms = default_methods()

    def test_keyword_only(self) -> None:
        """
        Positional arguments are refused; keywords set the named fields.
        """
        self.assertRaises(TypeError, self.ms.Queue.Declare, "q")
        declare = self.ms.Queue.Declare(queue="q", durable=True)
        self.assertEqual((declare.queue, declare.durable), ("q", True))

    def test_defaults_per_wire_type(self) -> None:
        """
        Every field defaults to the zero value of its wire type: 0 for
        integers, C{""} for short strings, C{b""} for long strings, C{False}
        for bits and an empty dict for tables.
        """
        expected = {
            "octet": 0,
            "short": 0,
            "long": 0,
            "longlong": 0,
            "timestamp": 0,
            "bit": False,
            "shortstr": "",
            "longstr": b"",
            "table": {},
        }
        seen = set()
        for cls in self.ms.by_name.values():
            instance = cls()
            for f in cls.SPEC.fields:
                if f.reserved:
                    continue
                value = getattr(instance, f.name)
                self.assertEqual(typed(value), typed(expected[f.type]), f"{cls.NAME}.{f.name}")
                seen.add(f.type)
        # the default spec has no timestamp method field; every other type
        # was checked
        self.assertEqual(seen, set(expected) - {"timestamp"})

    def test_fresh_mutable_defaults(self) -> None:
        """
        Two instances do not share their default table: changing one
        instance's C{arguments} leaves another's empty.
        """
        first = self.ms.Queue.Declare()
        second = self.ms.Queue.Declare()
        self.assertIsNot(first.arguments, second.arguments)
        first.arguments["x-max-length"] = 10
        self.assertEqual(second.arguments, {})
        self.assertEqual(self.ms.Queue.Declare().arguments, {})

    def test_unknown_keyword(self) -> None:
        """
        An unknown keyword raises C{TypeError} naming it and listing the
        valid fields, so a typo is easy to spot.
        """
        with self.assertRaises(TypeError) as caught:
            self.ms.Queue.Declare(queue="q", nowait=True)
        message = str(caught.exception)
        self.assertIn("Queue.Declare", message)
        self.assertIn("nowait", message)
        for name in self.ms.Queue.Declare.field_names:
            self.assertIn(name, message)

    def test_reserved_fields_not_attributes(self) -> None:
        """
        Reserved fields (0-9-1's C{reserved-1}, once C{ticket}) are neither
        fields nor keywords.
        """
        declare = self.ms.Queue.Declare
        self.assertEqual(
            declare.field_names,
            ("queue", "passive", "durable", "exclusive", "auto_delete", "no_wait", "arguments"),
        )
        self.assertFalse(hasattr(declare(), "reserved_1"))
        self.assertRaises(TypeError, declare, reserved_1=0)
        self.assertRaises(TypeError, declare, ticket=0)

    def test_class_variables(self) -> None:
        """
        The wire identity and protocol facts are class variables.
        """
        declare = self.ms.Queue.Declare
        self.assertEqual(
            (declare.NAME, declare.CLASS_ID, declare.METHOD_ID),
            ("queue.declare", 50, 10),
        )
        self.assertTrue(declare.SYNCHRONOUS)
        self.assertFalse(declare.CONTENT)
        self.assertTrue(self.ms.Basic.Publish.CONTENT)
        self.assertIs(declare.SPEC, self.ms.spec.method("queue.declare"))
        self.assertIs(self.ms["queue.declare"], declare)
        self.assertIs(self.ms["queue_declare"], declare)
        self.assertIs(self.ms.by_key[(50, 10)], declare)

    def test_unknown_names(self) -> None:
        """
        Asking for a class or method the spec lacks is an C{AttributeError}
        (or C{KeyError} by name) that names it.
        """
        with self.assertRaises(AttributeError) as caught:
            self.ms.Nothing  # noqa: B018
        self.assertIn("Nothing", str(caught.exception))
        with self.assertRaises(AttributeError) as caught:
            self.ms.Queue.Nothing  # noqa: B018
        self.assertIn("Nothing", str(caught.exception))
        self.assertRaises(KeyError, self.ms.__getitem__, "queue.nothing")


class ImmutabilityTests(SynchronousTestCase):
    """
    Methods and properties are frozen; C{replace} makes changed copies.
    """

    def setUp(self) -> None:
        self.ms = default_methods()

    def test_setattr_and_delattr(self) -> None:
        """
        Setting or deleting a field, or adding an attribute, raises
        C{AttributeError} and changes nothing.
        """
        ack = self.ms.Basic.Ack(delivery_tag=5)
        props = self.ms.Basic.Properties(delivery_mode=2)
        for item, name in ((ack, "delivery_tag"), (props, "delivery_mode")):
            self.assertRaises(AttributeError, setattr, item, name, 9)
            self.assertRaises(AttributeError, delattr, item, name)
            self.assertRaises(AttributeError, setattr, item, "extra", 1)
        self.assertEqual(ack.delivery_tag, 5)
        self.assertEqual(props.delivery_mode, 2)

    def test_replace(self) -> None:
        """
        C{replace} returns a new object with the given fields changed, the
        others copied, and leaves the original alone; an unknown field is a
        C{TypeError}.
        """
        ack = self.ms.Basic.Ack(delivery_tag=5, multiple=True)
        changed = ack.replace(delivery_tag=6)
        self.assertEqual((changed.delivery_tag, changed.multiple), (6, True))
        self.assertEqual(ack.delivery_tag, 5)
        self.assertIs(type(changed), type(ack))
        self.assertRaises(TypeError, ack.replace, tag=1)
        props = self.ms.Basic.Properties(content_type="text/plain")
        self.assertEqual(
            props.replace(priority=3),
            self.ms.Basic.Properties(content_type="text/plain", priority=3),
        )

    def test_equality(self) -> None:
        """
        Objects are equal when they are of the same class and all fields are
        equal; a different class with the same fields is not equal.  They
        are not hashable (tables are mutable).
        """
        ack = self.ms.Basic.Ack(delivery_tag=5)
        self.assertEqual(ack, self.ms.Basic.Ack(delivery_tag=5))
        self.assertNotEqual(ack, self.ms.Basic.Ack(delivery_tag=6))
        self.assertNotEqual(ack, self.ms.Basic.Ack(delivery_tag=5, multiple=True))
        self.assertNotEqual(ack, self.ms.Basic.Nack(delivery_tag=5))
        self.assertNotEqual(ack, ("basic.ack", 5))
        self.assertEqual(
            self.ms.Queue.Declare(arguments={"a": 1}), self.ms.Queue.Declare(arguments={"a": 1})
        )
        self.assertNotEqual(
            self.ms.Queue.Declare(arguments={"a": 1}), self.ms.Queue.Declare(arguments={"a": 2})
        )
        self.assertRaises(TypeError, hash, ack)

    def test_different_specs_differ(self) -> None:
        """
        The classes of two specs are distinct: a 0-8 C{basic.ack} is not a
        0-9-1 one even with the same fields.
        """
        old = methods_for(reference_spec("0-8/amqp0-8.stripped.xml"))
        self.assertNotEqual(old.Basic.Ack(delivery_tag=1), self.ms.Basic.Ack(delivery_tag=1))


class ReprTests(SynchronousTestCase):
    """
    The repr is readable and keeps secrets out.
    """

    def setUp(self) -> None:
        self.ms = default_methods()

    def test_method_repr(self) -> None:
        """
        A method shows its qualified class name and every field by name.
        """
        self.assertEqual(
            repr(self.ms.Basic.Ack(delivery_tag=5)), "Basic.Ack(delivery_tag=5, multiple=False)"
        )
        self.assertEqual(repr(self.ms.Channel.OpenOk()), "Channel.OpenOk()")
        self.assertEqual(
            repr(self.ms.Queue.Declare(queue="q", arguments={"x-max-length": 1})),
            "Queue.Declare(queue='q', passive=False, durable=False, exclusive=False, "
            "auto_delete=False, no_wait=False, arguments={'x-max-length': 1})",
        )

    def test_credentials_hidden(self) -> None:
        """
        The SASL response of C{connection.start-ok} and C{connection.secure-ok}
        and the new secret of C{connection.update-secret} never appear in a
        repr; the other fields do.
        """
        start_ok = self.ms.Connection.StartOk(
            mechanism="PLAIN", response=b"\0guest\0s3cret", locale="en_US"
        )
        secure_ok = self.ms.Connection.SecureOk(response=b"\0guest\0s3cret")
        update = self.ms.Connection.UpdateSecret(new_secret=b"s3cret-token", reason="rotate")
        for item in (start_ok, secure_ok, update):
            text = repr(item)
            self.assertNotIn("s3cret", text)
            self.assertIn("<hidden>", text)
        self.assertIn("mechanism='PLAIN'", repr(start_ok))
        self.assertIn("reason='rotate'", repr(update))

    def test_properties_repr(self) -> None:
        """
        Properties show only those that are set.
        """
        props = self.ms.Basic.Properties(content_type="text/plain", delivery_mode=2)
        self.assertEqual(
            repr(props), "Basic.Properties(content_type='text/plain', delivery_mode=2)"
        )
        self.assertEqual(repr(self.ms.Basic.Properties()), "Basic.Properties()")


class ProtocolFactsTests(SynchronousTestCase):
    """
    C{expects_reply} and C{RESPONSES}.
    """

    def setUp(self) -> None:
        self.ms = default_methods()

    def test_expects_reply(self) -> None:
        """
        A synchronous method expects a reply unless sent with
        C{no_wait=True}; an asynchronous one never does.
        """
        ms = self.ms
        self.assertTrue(ms.Queue.Declare().expects_reply)
        self.assertFalse(ms.Queue.Declare(no_wait=True).expects_reply)
        self.assertTrue(ms.Confirm.Select().expects_reply)
        self.assertFalse(ms.Confirm.Select(no_wait=True).expects_reply)
        self.assertTrue(ms.Basic.Get().expects_reply)
        self.assertTrue(ms.Basic.Qos().expects_reply)
        self.assertFalse(ms.Basic.Publish().expects_reply)
        self.assertFalse(ms.Basic.Ack().expects_reply)

    def test_responses_are_classes(self) -> None:
        """
        C{RESPONSES} holds the answering method classes of the same set,
        every synchronous request of the spec has some, and C{replies}
        collects them.
        """
        ms = self.ms
        self.assertEqual(ms.Queue.Declare.RESPONSES, (ms.Queue.DeclareOk,))
        self.assertEqual(ms.Basic.Get.RESPONSES, (ms.Basic.GetOk, ms.Basic.GetEmpty))
        self.assertEqual(ms.Basic.Publish.RESPONSES, ())
        for cls in ms.by_name.values():
            for response in cls.RESPONSES:
                self.assertIs(ms.by_key[(response.CLASS_ID, response.METHOD_ID)], response)
                self.assertEqual(response.CLASS_ID, cls.CLASS_ID, cls.NAME)
                self.assertIn(response, ms.replies)
            if cls.SYNCHRONOUS and "server" in cls.SPEC.chassis and not cls.NAME.endswith("-ok"):
                self.assertTrue(cls.RESPONSES, f"{cls.NAME} is synchronous without responses")

    def test_properties_default_none(self) -> None:
        """
        Every property defaults to C{None} (absent); the default spec's
        C{Basic.Properties} has the 14 properties of 0-9-1, in wire order.
        """
        props_cls = self.ms.properties[60]
        self.assertIs(props_cls, self.ms.Basic.Properties)
        self.assertEqual(
            props_cls.field_names,
            (
                "content_type",
                "content_encoding",
                "headers",
                "delivery_mode",
                "priority",
                "correlation_id",
                "reply_to",
                "expiration",
                "message_id",
                "timestamp",
                "type",
                "user_id",
                "app_id",
                "reserved",
            ),
        )
        props = props_cls()
        self.assertEqual([v for _, v in props.items()], [None] * 14)
        self.assertEqual(list(self.ms.properties), [60])


class OlderSpecTests(SynchronousTestCase):
    """
    0-8 and 0-9 specifics.
    """

    def test_08_queue_declare(self) -> None:
        """
        0-8's C{queue.declare} has a C{ticket} field (not reserved there)
        and its C{nowait} is spelled C{no_wait}, so C{no_wait} still
        controls C{expects_reply}.
        """
        ms = methods_for(reference_spec("0-8/amqp0-8.stripped.xml"))
        declare = ms.Queue.Declare
        self.assertIn("ticket", declare.field_names)
        self.assertIn("no_wait", declare.field_names)
        self.assertFalse(declare(ticket=1, no_wait=True).expects_reply)
        self.assertTrue(declare(ticket=1).expects_reply)
        encoded = declare(ticket=0x0102, queue="q").encode()
        self.assertEqual(encoded[:7], b"\x00\x32\x00\x0a\x01\x02\x01")

    def test_09_content_classes(self) -> None:
        """
        0-8 and 0-9 have several content classes, each with its own
        properties class; 0-8's C{test} class has content methods but no
        properties, and gets an empty properties class for its headers.
        """
        for name, test_class in (
            ("0-8/amqp0-8.stripped.xml", [120]),
            ("0-9/amqp0-9.stripped.xml", []),
        ):
            ms = methods_for(reference_spec(name))
            self.assertEqual(sorted(ms.properties), [60, 70, 80, 110, *test_class], name)
            self.assertIn("filename", ms.File.Properties.field_names)
        ms = methods_for(reference_spec("0-8/amqp0-8.stripped.xml"))
        self.assertEqual(ms.Test.Properties.field_names, ())
        self.assertEqual(ms.Test.Properties().encode_header(3)[-2:], b"\x00\x00")


SPEC_08 = "0-8/amqp0-8.stripped.xml"


class MakeTests(SynchronousTestCase):
    """
    L{MethodSet.make} builds a method from arguments written for any AMQP
    version, keeping exactly the fields the loaded spec defines.
    """

    def setUp(self) -> None:
        self.ms = default_methods()
        self.ms08 = methods_for(reference_spec(SPEC_08))

    def test_positional_in_spec_order(self) -> None:
        """
        Positional arguments are the fields in the spec's order, reserved
        ones included (txAMQP's calls pass the ticket first); the value
        given for a reserved field is dropped, whatever it is.
        """
        declare = self.ms.make("exchange.declare", (0, "x", "direct", False, True))
        self.assertEqual(
            declare, self.ms.Exchange.Declare(exchange="x", type="direct", durable=True)
        )
        self.assertEqual(self.ms.make("exchange.declare", (7, "x")).exchange, "x")
        bind = self.ms.make("queue.bind", (0, "q", "ex"), {"routing_key": "rk"})
        self.assertEqual(bind, self.ms.Queue.Bind(queue="q", exchange="ex", routing_key="rk"))

    def test_positional_08_ticket_kept(self) -> None:
        """
        0-8's C{ticket} is a real field, not a reserved one: its positional
        value is kept.
        """
        declare = self.ms08.make("exchange.declare", (7, "x", "direct"))
        self.assertIs(type(declare), self.ms08.Exchange.Declare)
        self.assertEqual((declare.ticket, declare.exchange, declare.type), (7, "x", "direct"))

    def test_method_by_class_or_any_spelling(self) -> None:
        """
        The method is named by its class or by its full name in any
        spelling.
        """
        expected = self.ms.Basic.Qos(prefetch_count=5)
        for method in (self.ms.Basic.Qos, "basic.qos", "basic_qos"):
            self.assertEqual(self.ms.make(method, (), {"prefetch_count": 5}), expected, method)

    def test_keyword_spellings(self) -> None:
        """
        Keywords may be spelled as any version of the spec writes them:
        C{no_wait}, C{nowait}, C{"no-wait"} and 0-8's C{"no wait"} all set
        C{no_wait}, with the default spec and with 0-8's; C{global} sets
        C{global_}.
        """
        for ms in (self.ms, self.ms08):
            for spelling in ("no_wait", "nowait", "no-wait", "no wait"):
                declare = ms.make("queue.declare", (), {"queue": "q", spelling: True})
                self.assertIs(declare.no_wait, True, (ms.spec.version_name, spelling))
                self.assertFalse(declare.expects_reply)
        self.assertIs(self.ms.make("basic.qos", (), {"global": True}).global_, True)

    def test_empty_values_for_missing_fields_dropped(self) -> None:
        """
        A keyword for a field the loaded spec lacks is dropped when its value
        is empty (C{None}, C{0}, C{False}, C{""}, C{{}}): C{arguments} for
        0-8's C{basic.consume}, the C{ticket} 0-9-1 no longer has.
        """
        plain = self.ms08.Basic.Consume(queue="q")
        for empty in ({}, None, 0, False, ""):
            self.assertEqual(
                self.ms08.make("basic.consume", (), {"queue": "q", "arguments": empty}),
                plain,
                repr(empty),
            )
        self.assertEqual(
            self.ms.make("exchange.declare", (), {"exchange": "x", "ticket": 0}),
            self.ms.Exchange.Declare(exchange="x"),
        )

    def test_values_for_missing_fields_refused(self) -> None:
        """
        A non-empty value for a field the loaded spec lacks is a
        C{TypeError} naming the method, the field and the spec (its version
        and file).
        """
        exc = self.assertRaises(
            TypeError,
            self.ms08.make,
            "basic.consume",
            (),
            {"queue": "q", "arguments": {"x-priority": 1}},
        )
        text = str(exc)
        for part in ("basic.consume", "arguments", "0-8", SPEC_08):
            self.assertIn(part, text)
        exc = self.assertRaises(TypeError, self.ms.make, "exchange.declare", (), {"ticket": 5})
        self.assertIn("ticket", str(exc))
        self.assertIn(self.ms.spec.describe(), str(exc))

    def test_too_many_positionals(self) -> None:
        """
        More positional arguments than the spec's method has fields is a
        C{TypeError} saying how many it takes, in which spec.
        """
        fields = len(self.ms.Exchange.Declare.SPEC.fields)
        exc = self.assertRaises(
            TypeError, self.ms.make, "exchange.declare", tuple(range(fields + 1))
        )
        self.assertIn(f"at most {fields}", str(exc))
        self.assertIn("0-9-1", str(exc))
        # as many as there are fields is fine
        self.ms.make("exchange.declare", (0, "x", "direct", False, False, False, False, False, {}))

    def test_field_given_twice(self) -> None:
        """
        A field given both positionally and by keyword is a C{TypeError}.
        """
        exc = self.assertRaises(
            TypeError, self.ms.make, "exchange.declare", (0, "x"), {"exchange": "y"}
        )
        self.assertIn("exchange", str(exc))

    def test_unknown_method(self) -> None:
        """
        A method the spec lacks is a L{LocalProtocolError} (540) naming the
        spec.
        """
        exc = self.assertRaises(LocalProtocolError, self.ms08.make, "confirm.select")
        self.assertEqual(exc.reply_code, 540)
        self.assertIn("confirm.select", str(exc))
        self.assertIn(self.ms08.spec.describe(), str(exc))


class PropertiesFromTests(SynchronousTestCase):
    """
    L{MethodSet.properties_from} builds content properties from a mapping
    whose names are spelled any way.
    """

    def test_spellings(self) -> None:
        """
        0-8's C{"delivery mode"} and C{"reply to"}, the spec's
        C{"content-type"} and Python's C{app_id} all name their property,
        with 0-8's spec and the default one.
        """
        given = {"delivery mode": 2, "reply to": "r", "content-type": "t", "app_id": "a"}
        for ms in (methods_for(reference_spec(SPEC_08)), default_methods()):
            props = ms.properties_from(60, given)
            self.assertIs(type(props), ms.properties[60])
            self.assertEqual(
                props,
                ms.properties[60](delivery_mode=2, reply_to="r", content_type="t", app_id="a"),
            )

    def test_unknown_property(self) -> None:
        """
        A property the spec does not define is a C{TypeError} naming it and
        the spec when it has a value (0-9-1 has no C{cluster_id}; no spec
        has C{bogus}), and is ignored when it is C{None}.  0-8 has
        C{cluster_id}.
        """
        ms = default_methods()
        for name in ("cluster_id", "bogus"):
            exc = self.assertRaises(TypeError, ms.properties_from, 60, {name: "x"})
            self.assertIn(name, str(exc))
            self.assertIn(ms.spec.describe(), str(exc))
        self.assertEqual(ms.properties_from(60, {"cluster-id": None}), ms.properties[60]())
        ms08 = methods_for(reference_spec(SPEC_08))
        self.assertEqual(ms08.properties_from(60, {"cluster id": "c"}).cluster_id, "c")

    @settings(max_examples=200, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    "reply_to",
                    "correlation_id",
                    "delivery_mode",
                    "headers",
                    "content-type",
                    "app id",
                    "cluster_id",
                    "bogus",
                ]
            ),
            st.one_of(st.none(), st.text(max_size=5), st.integers(0, 3)),
            max_size=5,
        )
    )
    def test_plain_dict_as_any_mapping(self, given_values: dict[str, Any]) -> None:
        """
        A plain C{dict} (whose Python-spelled names are taken as they are)
        gives the same properties, or the same error, as the same names in
        another mapping, with 0-8's spec and the default one.
        """
        def outcome(ms: MethodSet, mapping: Any) -> Any:
            try:
                return ms.properties_from(60, mapping)
            except Exception as e:
                return (type(e), str(e))

        for ms in (methods_for(reference_spec(SPEC_08)), default_methods()):
            self.assertEqual(outcome(ms, given_values), outcome(ms, MappingProxyType(given_values)))


class LookupTests(SynchronousTestCase):
    """
    L{MethodSet.get} and L{MethodSet.require} find a method class by its
    full name in any spelling.
    """

    def test_get(self) -> None:
        """
        C{get} gives the class, or C{None} when the spec lacks the method.
        """
        ms = default_methods()
        for spelling in ("basic.get-ok", "basic_get_ok", "basic.get_ok"):
            self.assertIs(ms.get(spelling), ms.Basic.GetOk, spelling)
        self.assertIs(ms.get("confirm.select"), ms.Confirm.Select)
        self.assertIsNone(methods_for(reference_spec(SPEC_08)).get("confirm.select"))
        self.assertIsNone(ms.get("queue.nothing"))

    def test_require(self) -> None:
        """
        C{require} gives the class, or raises L{LocalProtocolError} (540,
        not implemented) naming the method and the spec.
        """
        ms08 = methods_for(reference_spec(SPEC_08))
        self.assertIs(ms08.require("basic_consume"), ms08.Basic.Consume)
        exc = self.assertRaises(LocalProtocolError, ms08.require, "basic_nack")
        self.assertEqual(exc.reply_code, 540)
        self.assertIn("basic.nack", str(exc))
        self.assertIn(ms08.spec.describe(), str(exc))
        self.assertIn("0-8", str(exc))


class EncodeErrorTests(SynchronousTestCase):
    """
    A value that does not fit its field raises L{LocalProtocolError} whose
    message names the method and the field.
    """

    def setUp(self) -> None:
        self.ms = default_methods()

    def check(self, method: Method, field: str) -> LocalProtocolError:
        exc = self.assertRaises(LocalProtocolError, method.encode)
        self.assertIn(method.NAME, exc.reply_text)
        self.assertIn(f"field {field} ", exc.reply_text)
        return exc

    def test_shortstr_too_long(self) -> None:
        """
        A 256-byte queue name does not fit a short string; 255 bytes do.
        """
        exc = self.check(self.ms.Queue.Declare(queue="q" * 256), "queue")
        self.assertIn("255", exc.reply_text)
        self.check(self.ms.Queue.Declare(queue="é" * 128), "queue")
        self.assertEqual(len(self.ms.Queue.Declare(queue="q" * 255).encode()), 4 + 2 + 256 + 1 + 4)

    def test_int_out_of_range(self) -> None:
        """
        Integers outside their unsigned wire type are refused.
        """
        self.check(self.ms.Basic.Qos(prefetch_count=65536), "prefetch_count")
        self.check(self.ms.Basic.Ack(delivery_tag=-1), "delivery_tag")
        self.check(self.ms.Basic.Ack(delivery_tag=2**64), "delivery_tag")
        self.check(self.ms.Basic.Qos(prefetch_size=2**32), "prefetch_size")

    def test_wrong_type(self) -> None:
        """
        A value of the wrong Python type is refused, naming the field.
        """
        self.check(self.ms.Queue.Declare(queue=3), "queue")
        self.check(self.ms.Basic.Ack(delivery_tag="1"), "delivery_tag")
        self.check(self.ms.Basic.Ack(delivery_tag=1.0), "delivery_tag")
        self.check(self.ms.Queue.Declare(arguments=[("a", 1)]), "arguments")
        self.check(self.ms.Queue.Declare(arguments={"a": object()}), "arguments")
        self.check(self.ms.Connection.StartOk(response=3), "response")

    def test_properties_error(self) -> None:
        """
        A property that does not fit is refused with L{LocalProtocolError}.
        """
        props = self.ms.Basic.Properties
        self.assertRaises(LocalProtocolError, props(delivery_mode=256).encode_header, 0)
        self.assertRaises(LocalProtocolError, props(content_type=3).encode_header, 0)
        self.assertRaises(LocalProtocolError, props(headers={1: 2}).encode_header, 0)

    def test_properties_error_names_property(self) -> None:
        """
        The error for a property that does not fit names it, as method
        errors name their field.
        """
        props = self.ms.Basic.Properties(delivery_mode=256)
        exc = self.assertRaises(LocalProtocolError, props.encode_header, 0)
        self.assertIn("delivery_mode", exc.reply_text)

    def test_error_hides_secrets(self) -> None:
        """
        The error for a credentials field that cannot be encoded does not
        quote the credentials, which C{repr} hides.
        """
        for method in (
            self.ms.Connection.StartOk(response="\0guest\0s3cret\udc00"),
            self.ms.Connection.UpdateSecret(new_secret="s3cret\udc00"),
        ):
            exc = self.assertRaises(LocalProtocolError, method.encode)
            self.assertNotIn("s3cret", str(exc))


class RoundTripTests(SynchronousTestCase):
    """
    Hypothesis: every method and properties class of every spec we load
    (Debian's seven 0-8, 0-9 and 0-9-1 reference files and our default
    spec) decodes to what was encoded.
    """

    def check_method(self, spec_name: str, ms: MethodSet, cls: type[Method]) -> None:
        """
        Round-trip Hypothesis-drawn instances of one method class.
        """

        @_round_trip_settings(spec_name, ours=30, theirs=8)
        @given(method_strategy(cls))
        def round_trip(method: Method) -> None:
            payload = method.encode()
            self.assertEqual(payload[:4], struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID))
            decoded = ms.decode(payload)
            self.assertIs(type(decoded), cls)
            self.assertEqual(decoded, method)
            self.assertEqual(typed_fields(decoded), typed_fields(method), cls.NAME)

        round_trip()

    def check_properties(self, spec_name: str, ms: MethodSet, class_id: int) -> None:
        """
        Round-trip Hypothesis-drawn instances of one properties class, with
        any body size.
        """
        cls = ms.properties[class_id]
        types = {f.name: f.type for f in ms.spec.class_by_id[class_id].properties}

        @_round_trip_settings(spec_name, ours=300, theirs=40)
        @given(properties_strategy(cls, types), st.integers(0, 2**64 - 1))
        def round_trip(props: Properties, size: int) -> None:
            got_class, got_size, decoded = ms.decode_header(props.encode_header(size))
            self.assertEqual((got_class, got_size), (class_id, size))
            self.assertIs(type(decoded), cls)
            self.assertEqual(decoded, props)
            self.assertEqual(typed_fields(decoded), typed_fields(props))

        round_trip()

    def test_every_method(self) -> None:
        """
        For every method of every spec, C{ms.decode(m.encode()) == m} with
        each field of the same type, for values covering each wire type's
        whole range.
        """
        checked = 0
        for name in SPEC_NAMES:
            ms = methods_for(load_spec(name))
            for cls in ms.by_name.values():
                self.check_method(name, ms, cls)
                checked += 1
        # the seven reference files and ours
        self.assertEqual(checked, 619)

    def test_every_properties_class(self) -> None:
        """
        For every content class of every spec, any subset of properties
        goes through C{encode_header} and C{decode_header} unchanged, with
        the class id and body size.
        """
        checked = 0
        for name in SPEC_NAMES:
            ms = methods_for(load_spec(name))
            for class_id in ms.properties:
                self.check_properties(name, ms, class_id)
                checked += 1
        # 0-8 and 0-9 (four files) have four content classes with
        # properties, 0-9-1 one; the two 0-8 files add their test class,
        # whose content has no properties
        self.assertEqual(checked, 4 * 4 + 4 * 1 + 2)

    def test_typed_distinguishes(self) -> None:
        """
        The strict comparison the round trips use tells apart values that
        plain equality confuses.
        """
        self.assertEqual({"a": True}, {"a": 1})
        self.assertNotEqual(typed({"a": True}), typed({"a": 1}))
        self.assertNotEqual(typed([Decimal(1)]), typed([1.0]))
        self.assertEqual(typed({"a": [b"x", None]}), typed({"a": [b"x", None]}))
