# -*- test-case-name: tests.test_spec -*-
"""
Tests for L{txamqp_next.spec}: loading every spec file we claim to read,
normalised names, versions and protocol headers, and clear errors for files
we do not read.
"""

from __future__ import annotations

import io
import os
import pathlib

from twisted.trial.unittest import SynchronousTestCase

from txamqp_next import spec
from txamqp_next.spec import SpecError, python_name

REFERENCE_DIR = pathlib.Path("/usr/share/amqp/specs")
REPO_SPECS = pathlib.Path(__file__).resolve().parent.parent / "specs"

# The 0-8, 0-9 and 0-9-1 files of Debian's amqp-specs package.
REFERENCE_FILES = {
    "0-8/amqp0-8.stripped.xml": (8, 0, 0),
    "0-8-qpid/amqp0-8-qpid.stripped.xml": (8, 0, 0),
    "0-9/amqp0-9.stripped.xml": (0, 9, 0),
    "0-9-qpid/amqp0-9-qpid.stripped.xml": (0, 9, 0),
    "0-9-1/amqp0-9-1.stripped.xml": (0, 9, 1),
    "0-9-1-qpid/amqp0-9-1.stripped.xml": (0, 9, 1),
    "0-9-1-rabbit/amqp0-9-1.stripped.extended.xml": (0, 9, 1),
}


def reference(name: str) -> pathlib.Path:
    path = REFERENCE_DIR / name
    if not path.exists():
        raise AssertionError(
            f"{path} is missing: install Debian's reference specs with "
            "'apt-get install amqp-specs' (./scripts/dev test does this)"
        )
    return path


class ReferenceSpecTests(SynchronousTestCase):
    """
    Every 0-8, 0-9 and 0-9-1 file of Debian's amqp-specs loads, with the
    right version.
    """

    def test_each_reference_file_loads(self) -> None:
        """
        Each of the seven reference files loads, has the expected version,
        and every method has resolved wire types.
        """
        for name, version in REFERENCE_FILES.items():
            s = spec.load(reference(name))
            self.assertEqual(s.version, version, name)
            self.assertTrue(s.methods, name)
            for m in s.methods:
                for f in m.fields:
                    self.assertIn(f.type, spec.WIRE_TYPES, f"{name}: {m.full_name}.{f.name}")

    def test_every_xml_file_found_is_handled(self) -> None:
        """
        Every XML file under the reference directory either loads (0-8, 0-9,
        0-9-1) or fails with a L{SpecError} naming the file (0-10, 1.0).
        """
        found = sorted(reference("").rglob("*.xml"))
        self.assertGreaterEqual(len(found), 7)
        loaded = 0
        for path in found:
            try:
                spec.load(path)
            except SpecError as e:
                self.assertIn(str(path), str(e))
                self.assertTrue(
                    "0-10" in str(e) or "1.0" in str(e), f"unclear error for {path}: {e}"
                )
            else:
                loaded += 1
        self.assertEqual(loaded, len(REFERENCE_FILES))

    def test_0_10_rejected(self) -> None:
        """
        A 0-10 spec gets a L{SpecError} naming the file and the version.
        """
        path = reference("0-10/amqp.0-10.stripped.xml")
        exc = self.assertRaises(SpecError, spec.load, path)
        self.assertIn(str(path), str(exc))
        self.assertIn("0-10", str(exc))

    def test_1_0_rejected(self) -> None:
        """
        An AMQP 1.0 spec part gets a L{SpecError} saying it is 1.0.
        """
        path = reference("1-0/messaging.bare.xml")
        exc = self.assertRaises(SpecError, spec.load, path)
        self.assertIn("1.0", str(exc))

    def test_protocol_headers(self) -> None:
        """
        The protocol header follows the version: 0-9-1, 0-9 and 0-8 differ.
        """
        headers = {
            name: spec.load(reference(name)).protocol_header
            for name in (
                "0-8/amqp0-8.stripped.xml",
                "0-9/amqp0-9.stripped.xml",
                "0-9-1/amqp0-9-1.stripped.xml",
            )
        }
        self.assertEqual(headers["0-9-1/amqp0-9-1.stripped.xml"], b"AMQP\x00\x00\x09\x01")
        self.assertEqual(headers["0-9/amqp0-9.stripped.xml"], b"AMQP\x01\x01\x00\x09")
        self.assertEqual(headers["0-8/amqp0-8.stripped.xml"], b"AMQP\x01\x01\x08\x00")

    def test_qpid_0_9_1_version_spelling(self) -> None:
        """
        Qpid's 0-9-1 file says minor="91"; it loads as 0-9-1.
        """
        s = spec.load(reference("0-9-1-qpid/amqp0-9-1.stripped.xml"))
        self.assertEqual(s.version_name, "0-9-1")

    def test_0_8_names_normalised(self) -> None:
        """
        0-8 spells names with spaces and says C{nowait}; they normalise to
        the 0-9-1 Python names, and its soft and hard error classes are read.
        """
        s = spec.load(reference("0-8/amqp0-8.stripped.xml"))
        declare = s.method("queue.declare")
        names = [f.name for f in declare.fields]
        self.assertIn("no_wait", names)
        self.assertEqual(s.constant("frame end"), 206)
        self.assertEqual(s.soft_errors[404], "not found")
        self.assertEqual(s.hard_errors[501], "frame error")


class DefaultSpecTests(SynchronousTestCase):
    """
    The packaged default spec.
    """

    def test_default_is_0_9_1_with_extensions(self) -> None:
        """
        C{load()} and C{load("0-9-1")} give the same cached 0-9-1 spec, with
        RabbitMQ's extensions.
        """
        s = spec.load()
        self.assertIs(s, spec.load("0-9-1"))
        self.assertEqual(s.version, (0, 9, 1))
        for name in (
            "confirm.select",
            "basic.nack",
            "exchange.bind",
            "exchange.unbind",
            "connection.blocked",
            "connection.unblocked",
            "connection.update-secret",
        ):
            self.assertIn(name, s.method_by_name)

    def test_method_model(self) -> None:
        """
        Methods know their ids, synchronous flag, responses and content.
        """
        s = spec.load()
        declare = s.method("queue.declare")
        self.assertEqual((declare.class_id, declare.id), (50, 10))
        self.assertTrue(declare.synchronous)
        self.assertEqual(declare.responses, ("declare-ok",))
        self.assertEqual(declare.python_name, "queue_declare")
        self.assertFalse(declare.content)
        self.assertTrue(s.method("basic.publish").content)
        self.assertIs(s.method("basic_publish"), s.method("basic.publish"))

    def test_field_names_normalised_and_reserved_marked(self) -> None:
        """
        C{no-wait} becomes C{no_wait}, C{global} becomes C{global_}, and
        reserved fields are marked.
        """
        s = spec.load()
        declare = {f.name: f for f in s.method("queue.declare").fields}
        self.assertEqual(declare["no_wait"].raw_name, "no-wait")
        self.assertEqual(declare["no_wait"].type, "bit")
        self.assertTrue(declare["reserved_1"].reserved)
        self.assertFalse(declare["queue"].reserved)
        qos = [f.name for f in s.method("basic.qos").fields]
        self.assertEqual(qos, ["prefetch_size", "prefetch_count", "global_"])

    def test_constants_and_reply_codes(self) -> None:
        """
        Reply codes are split into soft (channel) and hard (connection).
        """
        s = spec.load()
        self.assertEqual(s.soft_errors[404], "not-found")
        self.assertEqual(s.hard_errors[530], "not-allowed")
        self.assertNotIn(404, s.hard_errors)
        self.assertEqual(s.constant("frame-max", 0) if False else s.constant("frame-end"), 206)
        self.assertEqual(s.constant("no-such-constant", 7), 7)
        self.assertRaises(KeyError, s.constant, "no-such-constant")

    def test_content_properties(self) -> None:
        """
        Basic has its 14 content properties in wire order.
        """
        props = spec.load().class_by_name["basic"].properties
        self.assertEqual(len(props), 14)
        self.assertEqual(props[0].name, "content_type")
        self.assertEqual(props[2].type, "table")
        self.assertEqual(props[9].type, "timestamp")

    def test_load_from_path_and_file_object_cached(self) -> None:
        """
        A spec loads from a path or a file object; the same contents read
        from the same place give the same object (a file object opened on
        the path is that place), which remembers where it came from.  The
        same contents from a nameless stream are another object, with the
        same classes.
        """
        path = reference("0-9-1/amqp0-9-1.stripped.xml")
        by_path = spec.load(str(path))
        with open(path, "rb") as f:
            by_file = spec.load(f)
        self.assertIs(by_path, by_file)
        self.assertEqual((by_path.source, by_path.file), (str(path), str(path)))
        by_text = spec.load(io.StringIO(path.read_text()))
        self.assertIsNot(by_text, by_path)
        self.assertEqual(by_text.source, "<stream>")
        self.assertIs(spec.load(io.StringIO(path.read_text())), by_text)
        self.assertEqual(
            [m.full_name for m in by_text.methods], [m.full_name for m in by_path.methods]
        )

    def test_default_source_is_its_path(self) -> None:
        """
        The packaged default spec's C{source} (and txAMQP's C{file}) is its
        real path, L{spec.DEFAULT_SPEC}; loading that path gives the same
        object as the short name, and C{describe} names version and file.
        """
        default = spec.load()
        self.assertEqual((default.source, default.file), (spec.DEFAULT_SPEC, spec.DEFAULT_SPEC))
        self.assertTrue(pathlib.Path(spec.DEFAULT_SPEC).is_file())
        self.assertIs(spec.load(spec.DEFAULT_SPEC), default)
        self.assertIs(spec.load("0-9-1"), default)
        self.assertEqual(default.describe(), f"the 0-9-1 spec ({spec.DEFAULT_SPEC})")

    def test_repo_specs_load(self) -> None:
        """
        Every file in the repository's specs/ directory loads.
        """
        files = sorted(REPO_SPECS.glob("*.xml"))
        for path in files:
            self.assertTrue(spec.load(path).classes, path)


class BadSpecTests(SynchronousTestCase):
    """
    Files that are not specs get a clear L{SpecError}.
    """

    def load_text(self, text: str, name: str = "bad.xml") -> SpecError:
        path = self.mktemp() + name
        with open(path, "w") as f:
            f.write(text)
        exc = self.assertRaises(SpecError, spec.load, path)
        self.assertIn(path, str(exc))
        return exc

    def test_not_xml(self) -> None:
        """
        A file that is not XML says so.
        """
        exc = self.load_text("this is not xml")
        self.assertIn("not well-formed XML", str(exc))

    def test_other_xml(self) -> None:
        """
        XML that is not an AMQP spec names the root element it found.
        """
        exc = self.load_text("<html><body/></html>")
        self.assertIn("<html>", str(exc))

    def test_unsupported_version(self) -> None:
        """
        An <amqp> root with an unknown version names the version.
        """
        exc = self.load_text('<amqp major="0" minor="7"><class name="x" index="1"/></amqp>')
        self.assertIn("0-7", str(exc))

    def test_unknown_domain(self) -> None:
        """
        A field of an undeclared domain names the field and the domain.
        """
        exc = self.load_text(
            '<amqp major="0" minor="9" revision="1"><class name="c" index="10">'
            '<method name="m" index="10"><field name="f" domain="nope"/></method>'
            "</class></amqp>"
        )
        self.assertIn("c.m.f", str(exc))
        self.assertIn("nope", str(exc))

    def test_domain_loop(self) -> None:
        """
        Domains defined in terms of each other in a loop are reported.
        """
        exc = self.load_text(
            '<amqp major="0" minor="9" revision="1"><domain name="a" type="b"/>'
            '<domain name="b" type="a"/><class name="c" index="10">'
            '<method name="m" index="10"><field name="f" domain="a"/></method>'
            "</class></amqp>"
        )
        self.assertIn("loop", str(exc))

    def test_field_name_not_an_identifier(self) -> None:
        """
        A field whose name cannot be a Python name is refused, naming it.
        """
        exc = self.load_text(
            '<amqp major="0" minor="9" revision="1"><class name="c" index="10">'
            '<method name="m" index="10"><field name="a=b(1)" type="bit"/></method>'
            "</class></amqp>"
        )
        self.assertIn("a=b(1)", str(exc))

    def test_missing_file(self) -> None:
        """
        A path that does not exist and is no short name says both.
        """
        exc = self.assertRaises(SpecError, spec.load, os.path.join(self.mktemp(), "x.xml"))
        self.assertIn("0-9-1", str(exc))


class PythonNameTests(SynchronousTestCase):
    """
    L{python_name} normalises spec names once.
    """

    def test_examples(self) -> None:
        """
        Dashes and spaces become underscores, keywords get an underscore,
        and 0-8's nowait becomes no_wait.
        """
        self.assertEqual(python_name("no-wait"), "no_wait")
        self.assertEqual(python_name("queue name"), "queue_name")
        self.assertEqual(python_name("global"), "global_")
        self.assertEqual(python_name("nowait"), "no_wait")
