# -*- test-case-name: tests.test_default_spec -*-
"""
Tests for txamqp_next's packaged default spec, C{txamqp_next/specs/amqp0-9-1-rabbit.xml}.

The file is ours, but the protocol it describes must be exactly the one in
the Debian C{amqp-specs} reference file (AMQP 0-9-1 with RabbitMQ's confirm,
basic.nack and exchange.bind/unbind), plus the four connection methods
RabbitMQ added later and that reference lacks, and one documented erratum
(basic.recover is synchronous, see C{ERRATA}).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from importlib import resources
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txamqp_next import spec
from txamqp_next.spec import ClassSpec, FieldSpec, MethodSpec, Spec

REFERENCE = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"

# The methods our file adds to the reference, as RabbitMQ implements them:
# (class, method) -> expected id, flags, responses, chassis and fields
# (raw name, wire type).
EXTENSIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("connection", "blocked"): {
        "id": 60,
        "synchronous": False,
        "content": False,
        "responses": (),
        "chassis": frozenset({"client", "server"}),
        "fields": (("reason", "shortstr"),),
    },
    ("connection", "unblocked"): {
        "id": 61,
        "synchronous": False,
        "content": False,
        "responses": (),
        "chassis": frozenset({"client", "server"}),
        "fields": (),
    },
    ("connection", "update-secret"): {
        "id": 70,
        "synchronous": True,
        "content": False,
        "responses": ("update-secret-ok",),
        "chassis": frozenset({"server"}),
        "fields": (("new-secret", "longstr"), ("reason", "shortstr")),
    },
    ("connection", "update-secret-ok"): {
        "id": 71,
        "synchronous": True,
        "content": False,
        "responses": (),
        "chassis": frozenset({"client"}),
        "fields": (),
    },
}

# Where our file deliberately corrects the reference: (class, method) ->
# the attributes that differ, with our values.  The published 0-9-1 XML
# leaves basic.recover asynchronous, but RabbitMQ answers it with
# recover-ok (as RabbitMQ's own codegen spec says).
ERRATA: dict[tuple[str, str], dict[str, Any]] = {
    ("basic", "recover"): {"synchronous": True, "responses": ("recover-ok",)},
}

# The only elements the schema needs; documentation elements stay out.
SCHEMA_ELEMENTS = frozenset(
    {"amqp", "constant", "domain", "class", "chassis", "method", "response", "field", "doc"}
)

FIELD_ATTRIBUTES = ("name", "raw_name", "domain", "type", "reserved")
METHOD_ATTRIBUTES = ("name", "synchronous", "content", "responses", "chassis", "deprecated")


class DefaultSpecTests(SynchronousTestCase):
    """
    Compare C{spec.load("0-9-1")} with the amqp-specs reference file.
    """

    def setUp(self) -> None:
        if not os.path.exists(REFERENCE):
            self.fail(
                f"the reference spec {REFERENCE} is missing; "
                "install it with `apt-get install amqp-specs`"
            )
        self.ours: Spec = spec.load("0-9-1")
        self.reference: Spec = spec.load(REFERENCE)

    def assertFieldsEqual(
        self, where: str, ours: tuple[FieldSpec, ...], reference: tuple[FieldSpec, ...]
    ) -> None:
        """
        Assert two field lists match attribute by attribute, in order; every
        message names C{where} and the field.
        """
        self.assertEqual(
            [f.raw_name for f in ours],
            [f.raw_name for f in reference],
            f"{where}: the field names or their order differ",
        )
        for mine, theirs in zip(ours, reference, strict=True):
            for attribute in FIELD_ATTRIBUTES:
                self.assertEqual(
                    getattr(mine, attribute),
                    getattr(theirs, attribute),
                    f"{where}.{theirs.raw_name}: {attribute} differs",
                )

    def assertMethodEqual(self, ours: MethodSpec, reference: MethodSpec) -> None:
        """
        Assert two methods match in id, flags, responses, chassis and fields.
        """
        where = reference.full_name
        self.assertEqual(ours.id, reference.id, f"{where}: method id differs")
        self.assertEqual(ours.class_id, reference.class_id, f"{where}: class id differs")
        errata = ERRATA.get((reference.class_name, reference.name), {})
        for attribute in METHOD_ATTRIBUTES:
            expected = errata.get(attribute, getattr(reference, attribute))
            self.assertEqual(
                getattr(ours, attribute),
                expected,
                f"{where}: {attribute} differs",
            )
        self.assertFieldsEqual(where, ours.fields, reference.fields)

    def ourClass(self, reference: ClassSpec) -> ClassSpec:
        """
        Our class with the same name as C{reference}, failing if we lack it.
        """
        self.assertIn(reference.name, self.ours.class_by_name, f"class {reference.name} is missing")
        return self.ours.class_by_name[reference.name]

    def test_version(self) -> None:
        """
        The default spec is AMQP 0-9-1 on port 5672, like the reference.
        """
        self.assertEqual(
            (self.ours.major, self.ours.minor, self.ours.revision, self.ours.port),
            (
                self.reference.major,
                self.reference.minor,
                self.reference.revision,
                self.reference.port,
            ),
            "version or port differs",
        )
        self.assertEqual(self.ours.version, (0, 9, 1), "not AMQP 0-9-1")

    def test_constants(self) -> None:
        """
        The constants are the reference's: same names, values and error
        classes, in the same order.
        """
        self.assertEqual(
            [c.name for c in self.ours.constants],
            [c.name for c in self.reference.constants],
            "the constant names or their order differ",
        )
        for mine, theirs in zip(self.ours.constants, self.reference.constants, strict=True):
            self.assertEqual(mine.value, theirs.value, f"constant {theirs.name}: value differs")
            self.assertEqual(
                mine.error_class,
                theirs.error_class,
                f"constant {theirs.name}: error class differs",
            )

    def test_domains(self) -> None:
        """
        The domains are the reference's, with the same wire types, in the
        same order.
        """
        self.assertEqual(
            list(self.ours.domains),
            list(self.reference.domains),
            "the domain names or their order differ",
        )
        for name, wire_type in self.reference.domains.items():
            self.assertEqual(
                self.ours.domains[name], wire_type, f"domain {name}: wire type differs"
            )

    def test_classes(self) -> None:
        """
        The classes are the reference's, with the same ids and handlers, in
        the same order.
        """
        self.assertEqual(
            [c.name for c in self.ours.classes],
            [c.name for c in self.reference.classes],
            "the class names or their order differ",
        )
        for reference in self.reference.classes:
            ours = self.ourClass(reference)
            self.assertEqual(ours.id, reference.id, f"class {reference.name}: id differs")
            self.assertEqual(
                ours.handler, reference.handler, f"class {reference.name}: handler differs"
            )
            self.assertIs(
                self.ours.class_by_id[reference.id], ours, f"class {reference.name}: class_by_id"
            )

    def test_properties(self) -> None:
        """
        Every class has the reference's content properties, field by field
        (basic is the only one with any).
        """
        for reference in self.reference.classes:
            ours = self.ourClass(reference)
            self.assertFieldsEqual(
                f"{reference.name} properties", ours.properties, reference.properties
            )
        self.assertEqual(
            len(self.ours.class_by_name["basic"].properties), 14, "basic properties: count"
        )

    def test_reference_methods(self) -> None:
        """
        Every method of the reference is in our file with the same id,
        synchronous and content flags, responses, chassis and fields.
        """
        for reference_class in self.reference.classes:
            ours_class = self.ourClass(reference_class)
            for reference in reference_class.methods:
                self.assertIn(
                    reference.name,
                    ours_class.method_by_name,
                    f"{reference.full_name} is missing",
                )
                self.assertMethodEqual(ours_class.method_by_name[reference.name], reference)

    def test_only_extensions_added(self) -> None:
        """
        The methods we have and the reference lacks are exactly RabbitMQ's
        connection.blocked, unblocked, update-secret and update-secret-ok.
        """
        reference = {(m.class_name, m.name) for m in self.reference.methods}
        added = {(m.class_name, m.name) for m in self.ours.methods} - reference
        self.assertEqual(
            added, set(EXTENSIONS), "methods added to the reference are not the four extensions"
        )

    def test_extensions(self) -> None:
        """
        The four extension methods have the ids, flags, responses, chassis
        and fields RabbitMQ gives them, and no id clashes with the reference.
        """
        for (class_name, method_name), expected in EXTENSIONS.items():
            where = f"{class_name}.{method_name}"
            ours_class = self.ours.class_by_name[class_name]
            self.assertIn(method_name, ours_class.method_by_name, f"{where} is missing")
            method = ours_class.method_by_name[method_name]
            self.assertEqual(method.full_name, where, f"{where}: full_name")
            self.assertEqual(method.id, expected["id"], f"{where}: method id differs")
            self.assertIs(ours_class.method_by_id[expected["id"]], method, where)
            self.assertNotIn(
                expected["id"],
                self.reference.class_by_name[class_name].method_by_id,
                f"{where}: id {expected['id']} is taken in the reference",
            )
            for attribute in ("synchronous", "content", "responses", "chassis"):
                self.assertEqual(
                    getattr(method, attribute), expected[attribute], f"{where}: {attribute}"
                )
            self.assertFalse(method.deprecated, f"{where}: deprecated")
            self.assertEqual(
                [(f.raw_name, f.type) for f in method.fields],
                list(expected["fields"]),
                f"{where}: fields differ",
            )
            for f in method.fields:
                self.assertFalse(f.reserved, f"{where}.{f.raw_name}: reserved")

    def test_methods_in_index_order(self) -> None:
        """
        Within each class our methods are listed by ascending id.
        """
        for ours in self.ours.classes:
            ids = [m.id for m in ours.methods]
            self.assertEqual(ids, sorted(ids), f"class {ours.name}: methods not in index order")

    def test_responses_exist(self) -> None:
        """
        Every response a method names is a method of the same class, and
        only synchronous methods name responses.
        """
        for ours in self.ours.classes:
            for method in ours.methods:
                if method.responses:
                    self.assertTrue(method.synchronous, f"{method.full_name}: not synchronous")
                for response in method.responses:
                    self.assertIn(
                        response,
                        ours.method_by_name,
                        f"{method.full_name}: response {response} is not in class {ours.name}",
                    )

    def test_schema_elements_only(self) -> None:
        """
        The packaged file uses only the schema's elements: no documentation,
        rules or asserts.
        """
        data = resources.files("txamqp_next").joinpath("specs", "amqp0-9-1-rabbit.xml")
        root = ElementTree.fromstring(data.read_bytes())
        used = {e.tag for e in root.iter()}
        self.assertEqual(used - SCHEMA_ELEMENTS, set(), "non-schema elements in the default spec")

    def test_cached(self) -> None:
        """
        Loading the default spec twice gives the same object.
        """
        self.assertIs(spec.load("0-9-1"), self.ours, 'load("0-9-1") is not cached')
        self.assertIs(spec.load(), self.ours, "load() is not the 0-9-1 default")
