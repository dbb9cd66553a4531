# -*- test-case-name: tests.test_generated -*-
"""
The typed, documented view of the default spec: C{txamqp_next/methods.py}
is what C{scripts/generate_api.py} makes of the spec, every call is typed
and carries the spec's text, and C{mypy --strict} accepts right calls and
refuses wrong ones.
"""

from __future__ import annotations

import inspect
import pydoc
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import load_script, open_broker
from txamqp_next import methods, spec
from txamqp_next._methods import methods_for
from txamqp_next.channel import Channel
from txamqp_next.recovery import RecoveringChannel

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
D09 = "/usr/share/amqp/specs/0-9/amqp0-9.stripped.xml"
D08 = "/usr/share/amqp/specs/0-8/amqp0-8.stripped.xml"


def generator() -> ModuleType:
    return load_script("generate_api")


def client_calls() -> list[spec.MethodSpec]:
    """
    The methods a client sends on a channel in the default spec.
    """
    return [
        m for m in spec.load().methods if "server" in m.chassis and m.class_name != "connection"
    ]


def mypy(*paths: Path) -> list[tuple[str, int, str]]:
    """
    Run C{mypy --strict} on C{paths}; its errors as (file name, line, text).
    """
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = []
    for line in result.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: (.*)", line)
        if match:
            errors.append((Path(match[1]).name, int(match[2]), match[3]))
    if result.returncode not in (0, 1) or (result.returncode == 1 and not errors):
        raise AssertionError(f"mypy failed to run:\n{result.stdout}{result.stderr}")
    return errors


class GeneratedFileTests(SynchronousTestCase):
    """
    The generated module agrees with the spec and its generator.
    """

    def test_current(self) -> None:
        """
        C{txamqp_next/methods.py} is exactly what the generator makes of the
        default spec now: a change to either without the other fails here.
        """
        expected = generator().generate()
        on_disk = (ROOT / "txamqp_next" / "methods.py").read_text()
        self.assertTrue(
            expected == on_disk,
            "txamqp_next/methods.py differs from the spec: run python scripts/generate_api.py",
        )

    def test_every_method_has_a_protocol(self) -> None:
        """
        Each method of the default spec has a typing protocol naming each
        of its fields with the type its values have.
        """
        types = generator().ATTRIBUTE_TYPES
        for amqp_class in spec.load().classes:
            namespace = getattr(methods, spec.class_name(amqp_class.name))
            for method in amqp_class.methods:
                protocol = getattr(namespace, spec.class_name(method.name))
                fields = {f.name: types[f.type] for f in method.fields if not f.reserved}
                annotations = {
                    k: v
                    for k, v in protocol.__annotations__.items()
                    if not v.startswith("ClassVar")
                }
                self.assertEqual(annotations, fields, method.full_name)

    def test_every_client_method_is_a_call(self) -> None:
        """
        Every method a client sends on a channel is a typed call of
        L{Channel} and L{RecoveringChannel}, whose parameters are the
        method's fields; the calls written by hand are on each class itself.
        """
        hand_written = generator().HAND_WRITTEN
        for method in client_calls():
            call = getattr(Channel, method.python_name)
            parameters = inspect.signature(call).parameters
            for field in method.fields:
                if not field.reserved:
                    self.assertIn(field.name, parameters, method.full_name)
            if method.full_name in hand_written:
                self.assertIn(method.python_name, Channel.__dict__, method.full_name)
            else:
                self.assertIs(call, getattr(RecoveringChannel, method.python_name))
                self.assertIn(method.python_name, vars(methods.ChannelMethods))
        for name in ("basic_publish", "basic_consume", "basic_get", "basic_cancel"):
            self.assertIn(name, RecoveringChannel.__dict__)
        for name in ("confirm_select", "basic_ack"):
            self.assertIn(name, RecoveringChannel.__dict__)


class DocumentationTests(SynchronousTestCase):
    """
    The spec's own text reaches the calls, the method classes and
    C{help()}.
    """

    def test_spec_documents_every_field(self) -> None:
        """
        The default spec gives every client call, and every field of it, a
        label or text of its own.
        """
        for method in client_calls():
            self.assertTrue(method.label and method.doc, method.full_name)
            for field in method.fields:
                if not field.reserved:
                    self.assertTrue(field.label or field.doc, f"{method.full_name} {field.name}")

    def test_call_docstrings(self) -> None:
        """
        Each generated call's docstring holds the method's label and text
        and a line on each field, with its own text.
        """
        for method in client_calls():
            doc = inspect.getdoc(getattr(Channel, method.python_name)) or ""
            if method.full_name in generator().HAND_WRITTEN:
                self.assertTrue(doc, method.full_name)
                continue
            flat = " ".join(doc.split())
            self.assertIn(method.doc.split("\n\n")[0][:60], flat, method.full_name)
            for field in method.fields:
                if not field.reserved:
                    self.assertIn(f"@param {field.name}:", doc, method.full_name)
            self.assertIn("@return:", doc)

    def test_help(self) -> None:
        """
        C{help(channel.queue_declare)} shows the spec's text on the method
        and its fields.
        """
        channel = open_broker().open_channel()
        text = " ".join(pydoc.render_doc(channel.queue_declare, renderer=pydoc.plaintext).split())
        self.assertIn("This method creates or checks a queue.", text)
        self.assertIn("@param durable: Request a durable queue.", text)

    def test_other_spellings_at_run_time(self) -> None:
        """
        Untyped code may still spell a field as older specs do or as the XML
        does, and pass another spec's extra fields: the spelling given wins
        over the call's default.
        """
        broker = open_broker()
        channel = broker.open_channel()
        call = cast(Any, channel.queue_declare)
        call(queue="q", nowait=True)
        call(queue="q", **{"auto-delete": True})
        sent = broker.sent()
        self.assertEqual([(m.no_wait, m.auto_delete) for m in sent], [(True, False), (False, True)])
        broker = open_broker(spec=D08)
        channel = broker.open_channel()
        cast(Any, channel.queue_declare)(queue="q", ticket=7)
        [declare] = broker.sent()
        self.assertEqual((declare.queue, declare.ticket), ("q", 7))

    def test_method_classes(self) -> None:
        """
        The method classes built at run time carry the same text, fields as
        C{@ivar}.
        """
        ms = methods_for(spec.load())
        doc = ms.Queue.DeclareOk.__doc__ or ""
        self.assertIn("essential for automatically-named queues", " ".join(doc.split()))
        self.assertIn("@ivar consumer_count:", doc)
        props = ms.Basic.Properties.__doc__ or ""
        self.assertIn("@ivar delivery_mode: Non-persistent (1) or persistent (2).", props)

    def test_undocumented_spec(self) -> None:
        """
        With a spec file that has no text (the stripped files of
        amqp-specs), a method of that spec only is still documented by its
        name, ids and fields, at run time.
        """
        ms = methods_for(spec.load(D09))
        doc = ms.File.Qos.__doc__ or ""
        self.assertIn("C{file.qos}, 70.10", doc)
        self.assertIn("@ivar prefetch_count: A C{short}.", doc)

    def test_escaped(self) -> None:
        """
        Braces in spec text do not become epytext markup.
        """
        from txamqp_next._docs import escape

        self.assertEqual(escape("a {b} c"), "a E{lb}bE{rb} c")
        self.assertEqual(escape("}{"), "E{rb}E{lb}")


class TypeCheckTests(SynchronousTestCase):
    """
    C{mypy --strict} on code that calls the spec methods.
    """

    def test_right_and_wrong_calls(self) -> None:
        """
        mypy accepts every call in C{tests/typing/calls_ok.py} and reports
        an error on exactly the lines of C{tests/typing/calls_wrong.py} that
        say they are one, with the text they name.
        """
        ok, wrong = TYPING / "calls_ok.py", TYPING / "calls_wrong.py"
        errors = mypy(ok, wrong)
        self.assertEqual([e for e in errors if e[0] == ok.name], [])
        expected = {
            number: line.split("  # error: ", 1)[1].strip()
            for number, line in enumerate(wrong.read_text().splitlines(), 1)
            if "  # error: " in line
        }
        found: dict[int, list[str]] = {}
        for _, number, text in errors:
            found.setdefault(number, []).append(text)
        self.assertEqual(sorted(found), sorted(expected))
        for number, text in expected.items():
            self.assertTrue(
                any(text in message for message in found[number]),
                f"line {number}: {found[number]} does not say {text!r}",
            )

    def test_every_call_checked(self) -> None:
        """
        C{calls_ok.py} calls every client method of the default spec.
        """
        text = (TYPING / "calls_ok.py").read_text()
        for method in client_calls():
            self.assertIn(f"ch.{method.python_name}(", text, method.full_name)

    def test_readme_example(self) -> None:
        """
        The README's example passes C{mypy --strict}.
        """
        readme = (ROOT / "README.md").read_text()
        match = re.search(r"```python\n(.*?)```", readme, re.S)
        assert match is not None, "README.md has no python example"
        path = Path(self.mktemp() + ".py").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(match.group(1))
        self.assertEqual(mypy(path), [])
