# -*- test-case-name: tests.test_spec -*-
"""
The AMQP spec model: read an AMQP XML spec file into immutable objects.

C{load()} reads the 0-8, 0-9 and 0-9-1 XML spec files (the AMQP working
group's, RabbitMQ's and Qpid's variants) and returns a L{Spec}: its classes,
methods, fields (with domains resolved to wire types), constants, reply codes
and content properties.  Nothing else in txamqp_next reads raw XML names:
names are normalised here, once:

  - C{no-wait} becomes C{no_wait}, C{"queue name"} becomes C{queue_name};
  - a name that is a Python keyword gets a trailing underscore
    (C{global} becomes C{global_});
  - 0-8's C{nowait} becomes C{no_wait}, so the same keyword works for every
    version;
  - a field flagged C{reserved="1"} in the XML is marked L{FieldSpec.reserved}:
    method classes leave it out and the encoder fills it in.

The default spec, C{load("0-9-1")} (or C{load()}), is txamqp_next's own 0-9-1
description with RabbitMQ's extensions, shipped inside the package.
"""

from __future__ import annotations

import hashlib
import keyword
import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import IO

from txamqp_next.errors import SpecError

__all__ = [
    "DEFAULT_SPEC",
    "WIRE_TYPES",
    "ClassSpec",
    "ConstantSpec",
    "FieldSpec",
    "MethodSpec",
    "Spec",
    "SpecError",
    "load",
    "python_name",
    "spec_name",
]

#: The wire types a method field or content property can have.
WIRE_TYPES = frozenset(
    {"octet", "short", "long", "longlong", "bit", "shortstr", "longstr", "timestamp", "table"}
)

# 0-9's "message" class has a body field of the undeclared domain "content":
# an inline content carried as a long string.
_IMPLICIT_DOMAINS = {"content": "longstr"}

# Names that older specs spell differently from 0-9-1.
_NAME_ALIASES = {"nowait": "no_wait"}

_DEFAULT_SPEC_FILE = "amqp0-9-1-rabbit.xml"
_SHORT_NAMES = {"0-9-1": _DEFAULT_SPEC_FILE, "0-9-1-rabbit": _DEFAULT_SPEC_FILE}

#: The path of the default spec, txamqp_next's 0-9-1 with RabbitMQ's
#: extensions, inside the package (txAMQP's C{spec.DEFAULT_SPEC}):
#: C{load(DEFAULT_SPEC)} and C{load()} give the same L{Spec}.
DEFAULT_SPEC: str = str(resources.files("txamqp_next").joinpath("specs", _DEFAULT_SPEC_FILE))

# The protocol header each version sends, as RabbitMQ accepts them.
_PROTOCOL_HEADERS = {
    (0, 9, 1): b"AMQP\x00\x00\x09\x01",
    (0, 9, 0): b"AMQP\x01\x01\x00\x09",
    (8, 0, 0): b"AMQP\x01\x01\x08\x00",
}
_VERSION_NAMES = {(0, 9, 1): "0-9-1", (0, 9, 0): "0-9", (8, 0, 0): "0-8"}


def python_name(raw: str) -> str:
    """
    Normalise a spec name to the Python identifier txamqp_next uses for it.

    @param raw: a name from the XML, such as C{"no-wait"} or C{"queue name"}.
    @return: C{"no_wait"}, C{"queue_name"}; keywords get a trailing
        underscore (C{"global_"}).
    """
    name = raw.strip().lower().replace("-", "_").replace(" ", "_")
    name = _NAME_ALIASES.get(name, name)
    if keyword.iskeyword(name):
        name += "_"
    return name


def spec_name(name: str) -> str:
    """
    The spec's full method name for any spelling of it: C{"basic.get-ok"},
    C{"basic_get_ok"} and C{"basic.get_ok"} all give C{"basic.get-ok"}.
    """
    if "." not in name:
        name = name.replace("_", ".", 1)
    return name.replace("_", "-")


def _camel(raw: str) -> str:
    return "".join(part.capitalize() for part in raw.replace(" ", "-").split("-"))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """
    A method field or a content property.

    @ivar name: the Python name (C{"no_wait"}).
    @ivar raw_name: the name as the XML spells it (C{"no-wait"}).
    @ivar domain: the domain named in the XML, or C{None} when the field gives
        its type directly.
    @ivar type: the wire type, one of L{WIRE_TYPES}.
    @ivar reserved: whether the XML marks the field reserved.
    @ivar label: the spec's one-line summary (C{"request a durable queue"}),
        or its domain's; C{""} when the file gives none.
    @ivar doc: the spec's own text on the field, or on its domain when the
        field has none, paragraphs separated by blank lines; C{""} when the
        file gives none (the stripped files of C{amqp-specs} give none).
    """

    name: str
    raw_name: str
    domain: str | None
    type: str
    reserved: bool = False
    label: str = field(default="", compare=False, repr=False)
    doc: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """
    A method of an AMQP class.

    @ivar name: the method's name (C{"declare-ok"}).
    @ivar full_name: C{"queue.declare-ok"}.
    @ivar python_name: the name of the channel call for it
        (C{"queue_declare_ok"}).
    @ivar class_name: C{"queue"}.
    @ivar id: the method id.
    @ivar class_id: the class id.
    @ivar synchronous: whether the sender waits for one of C{responses}.
    @ivar content: whether the method carries content (header and body).
    @ivar responses: the names of the methods that answer it, in the same
        class (C{("declare-ok",)}).
    @ivar chassis: who may receive it: C{"client"}, C{"server"} or both.
    @ivar fields: every field, reserved ones included, in wire order.
    @ivar deprecated: whether the XML marks it deprecated.
    @ivar label: the spec's one-line summary (C{"declare queue, create if
        needed"}), or C{""}.
    @ivar doc: the spec's own text on the method, or C{""}.
    """

    name: str
    full_name: str
    python_name: str
    class_name: str
    id: int
    class_id: int
    synchronous: bool
    content: bool
    responses: tuple[str, ...]
    chassis: frozenset[str]
    fields: tuple[FieldSpec, ...]
    deprecated: bool = False
    label: str = field(default="", compare=False, repr=False)
    doc: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ClassSpec:
    """
    An AMQP class.

    @ivar name: C{"basic"}.
    @ivar id: C{60}.
    @ivar handler: the XML's handler attribute (C{"channel"}, C{"connection"}).
    @ivar methods: the class's methods in file order.
    @ivar properties: its content properties (only classes that carry
        content have any), in wire order.
    @ivar label: the spec's one-line summary (C{"work with queues"}), or
        C{""}.
    @ivar doc: the spec's own text on the class, or C{""}.
    """

    name: str
    id: int
    handler: str
    methods: tuple[MethodSpec, ...]
    properties: tuple[FieldSpec, ...]
    method_by_name: Mapping[str, MethodSpec] = field(compare=False, repr=False)
    method_by_id: Mapping[int, MethodSpec] = field(compare=False, repr=False)
    label: str = field(default="", compare=False, repr=False)
    doc: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ConstantSpec:
    """
    A constant of the spec.

    @ivar name: the name as the XML spells it (C{"not-found"}).
    @ivar value: its value.
    @ivar error_class: C{"soft"} for a channel-level reply code, C{"hard"}
        for a connection-level one, C{None} for other constants.
    """

    name: str
    value: int
    error_class: str | None


@dataclass(frozen=True, slots=True, eq=False)
class Spec:
    """
    A loaded AMQP spec.  Build one with L{load}.

    @ivar source: the path the spec was read from, or C{"<stream>"}.
    @ivar major: the major version (C{0} for 0-9-1, C{8} for 0-8).
    @ivar minor: the minor version.
    @ivar revision: the revision.
    @ivar port: the default port.
    @ivar classes: the classes in file order.
    @ivar constants: the constants in file order.
    @ivar domains: domain name to wire type.
    """

    source: str
    major: int
    minor: int
    revision: int
    port: int
    classes: tuple[ClassSpec, ...]
    constants: tuple[ConstantSpec, ...]
    domains: Mapping[str, str] = field(repr=False)
    class_by_name: Mapping[str, ClassSpec] = field(repr=False)
    class_by_id: Mapping[int, ClassSpec] = field(repr=False)
    method_by_key: Mapping[tuple[int, int], MethodSpec] = field(repr=False)
    method_by_name: Mapping[str, MethodSpec] = field(repr=False)
    constant_by_name: Mapping[str, int] = field(repr=False)

    @property
    def version(self) -> tuple[int, int, int]:
        """
        The version as C{(major, minor, revision)}: C{(0, 9, 1)},
        C{(0, 9, 0)} or C{(8, 0, 0)}.
        """
        return (self.major, self.minor, self.revision)

    @property
    def protocol_header(self) -> bytes:
        """
        The 8 bytes a client sends first, as this version defines them.
        """
        return _PROTOCOL_HEADERS[self.version]

    @property
    def methods(self) -> tuple[MethodSpec, ...]:
        """
        Every method of every class.
        """
        return tuple(m for c in self.classes for m in c.methods)

    def method(self, full_name: str) -> MethodSpec:
        """
        Look a method up by its full name.

        @param full_name: C{"basic.publish"}; Python spellings
            (C{"basic_publish"}) work too.
        @raise KeyError: the spec has no such method.
        """
        return self.method_by_name[spec_name(full_name)]

    def constant(self, name: str, default: int | None = None) -> int:
        """
        The value of a constant.

        @param name: any spelling (C{"frame-end"}, C{"frame end"},
            C{"frame_end"}).
        @param default: returned when the spec lacks the constant.
        @raise KeyError: the spec lacks it and no default was given.
        """
        value = self.constant_by_name.get(python_name(name))
        if value is None:
            if default is None:
                raise KeyError(name)
            return default
        return value

    @property
    def soft_errors(self) -> Mapping[int, str]:
        """
        Channel-level reply codes, to their names.
        """
        return {c.value: c.name for c in self.constants if c.error_class == "soft"}

    @property
    def hard_errors(self) -> Mapping[int, str]:
        """
        Connection-level reply codes, to their names.
        """
        return {c.value: c.name for c in self.constants if c.error_class == "hard"}

    @property
    def version_name(self) -> str:
        """
        The version as people write it: C{"0-9-1"}, C{"0-9"} or C{"0-8"}.
        """
        return _VERSION_NAMES[self.version]

    @property
    def file(self) -> str:
        """
        Where the spec was read from (txAMQP's name for L{source}).
        """
        return self.source

    def describe(self) -> str:
        """
        The spec in words, for error messages: C{"the 0-8 spec
        (/usr/share/amqp/specs/0-8/amqp0-8.stripped.xml)"}.
        """
        return f"the {self.version_name} spec ({self.source})"

    def __repr__(self) -> str:
        return f"<Spec {self.version_name} from {self.source!r}: {len(self.classes)} classes>"


def load(source: str | os.PathLike[str] | IO[bytes] | IO[str] = "0-9-1") -> Spec:
    """
    Load an AMQP spec.

    @param source: a short name (C{"0-9-1"}, the default: txamqp_next's own
        0-9-1 spec with RabbitMQ's extensions), a path to an XML spec file,
        or an open file object.
    @return: the L{Spec}; the same object for the same contents read from
        the same place.
    @raise SpecError: the file is not an AMQP spec, is a version we do not
        speak (0-10, 1.0), or is malformed; the message names the file.
    @raise OSError: the file cannot be read.
    """
    if isinstance(source, str) and source in _SHORT_NAMES:
        ref = resources.files("txamqp_next").joinpath("specs", _SHORT_NAMES[source])
        return _load_bytes(ref.read_bytes(), str(ref))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise SpecError(
                f"{path!r} is neither a file nor a known spec name "
                f"({', '.join(sorted(_SHORT_NAMES))})"
            )
        with open(path, "rb") as f:
            return _load_bytes(f.read(), path)
    data = source.read()
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return _load_bytes(raw, getattr(source, "name", "<stream>"))


_cache: dict[tuple[str, str], Spec] = {}


def _load_bytes(data: bytes, name: str) -> Spec:
    key = (hashlib.sha256(data).hexdigest(), name)
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = _parse(data, name)
    return cached


def _parse(data: bytes, name: str) -> Spec:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as e:
        raise SpecError(f"{name}: not well-formed XML ({e})") from None
    return _Parser(name).spec(root)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.domains: dict[str, str] = {}
        # domain key -> (label, doc), for fields that have neither
        self.domain_docs: dict[str, tuple[str, str]] = {}

    def fail(self, what: str) -> SpecError:
        return SpecError(f"{self.source}: {what}")

    def spec(self, root: ElementTree.Element) -> Spec:
        if root.tag.startswith("{"):
            namespace = root.tag[1 : root.tag.index("}")]
            if root.get("name") is not None:
                raise self.fail(
                    "this is an AMQP 1.0 spec file (namespace "
                    f"{namespace}, part {root.get('name')!r}); only 0-8, 0-9 and 0-9-1 "
                    "are supported"
                )
            raise self.fail(
                f"this is an AMQP {root.get('major')}-{root.get('minor')} spec file "
                f"(namespace {namespace}); only 0-8, 0-9 and 0-9-1 are supported"
            )
        if root.tag != "amqp":
            raise self.fail(f"not an AMQP spec: the root element is <{root.tag}>, not <amqp>")
        version = self.version(root)
        constants = tuple(self.constant(e) for e in root.findall("constant"))
        for e in root.findall("domain"):
            name, type_ = self.attr(e, "name"), self.attr(e, "type")
            self.domains[self.domain_key(name)] = type_
            if self.domain_key(name) not in WIRE_TYPES:
                self.domain_docs[self.domain_key(name)] = (e.get("label", ""), _doc(e))
        classes = tuple(self.amqp_class(e) for e in root.findall("class"))
        if not classes:
            raise self.fail("not an AMQP spec: it defines no <class>")
        return Spec(
            source=self.source,
            major=version[0],
            minor=version[1],
            revision=version[2],
            port=self.int_attr(root, "port", 5672),
            classes=classes,
            constants=constants,
            domains={k: self.wire_type(k, "domain") for k in self.domains},
            class_by_name={c.name: c for c in classes},
            class_by_id={c.id: c for c in classes},
            method_by_key={(m.class_id, m.id): m for c in classes for m in c.methods},
            method_by_name={m.full_name: m for c in classes for m in c.methods},
            constant_by_name={python_name(c.name): c.value for c in constants},
        )

    def version(self, root: ElementTree.Element) -> tuple[int, int, int]:
        major = self.int_attr(root, "major", -1)
        minor = self.int_attr(root, "minor", -1)
        revision = self.int_attr(root, "revision", 0)
        if (major, minor) == (0, 91):  # Qpid spells 0-9-1 as minor="91"
            minor, revision = 9, 1
        version = (major, minor, revision)
        if version not in _PROTOCOL_HEADERS:
            found = "no version" if major < 0 else f"version {major}-{minor}-{revision}"
            raise self.fail(f"{found} found; only 0-8, 0-9 and 0-9-1 are supported")
        return version

    def attr(self, e: ElementTree.Element, name: str) -> str:
        value = e.get(name)
        if value is None:
            raise self.fail(f"<{e.tag}> without a {name!r} attribute")
        return value

    def int_attr(self, e: ElementTree.Element, name: str, default: int | None = None) -> int:
        value = e.get(name)
        if value is None:
            if default is None:
                raise self.fail(f"<{e.tag} name={e.get('name')!r}> has no {name!r}")
            return default
        try:
            return int(value)
        except ValueError:
            raise self.fail(
                f"<{e.tag} name={e.get('name')!r}> has a non-integer {name}={value!r}"
            ) from None

    @staticmethod
    def flag(e: ElementTree.Element, name: str) -> bool:
        return e.get(name, "0").strip().lower() in ("1", "true", "yes")

    @staticmethod
    def domain_key(name: str) -> str:
        return name.strip().lower().replace(" ", "-")

    def constant(self, e: ElementTree.Element) -> ConstantSpec:
        cls = (e.get("class") or "").replace(" ", "-")
        error_class = {"soft-error": "soft", "hard-error": "hard"}.get(cls)
        return ConstantSpec(self.attr(e, "name"), self.int_attr(e, "value"), error_class)

    def wire_type(self, name: str, what: str) -> str:
        seen: list[str] = []
        key = self.domain_key(name)
        while key not in WIRE_TYPES:
            if key in seen:
                raise self.fail(f"{what} {name!r}: domains form a loop ({' -> '.join(seen)})")
            seen.append(key)
            if key in self.domains:
                key = self.domain_key(self.domains[key])
            elif key in _IMPLICIT_DOMAINS:
                key = _IMPLICIT_DOMAINS[key]
            else:
                raise self.fail(f"{what} {name!r}: unknown domain or type {key!r}")
        return key

    def field(self, e: ElementTree.Element, where: str) -> FieldSpec:
        raw = self.attr(e, "name")
        domain = e.get("domain")
        declared = e.get("type") or domain
        if declared is None:
            raise self.fail(f"field {where}.{raw} has neither a type nor a domain")
        name = python_name(raw)
        if not name.isidentifier():
            raise self.fail(f"field {where}.{raw}: {raw!r} does not make a Python name")
        label, doc = e.get("label", ""), _doc(e)
        if domain is not None and not (label and doc):
            domain_label, domain_doc = self.domain_docs.get(self.domain_key(domain), ("", ""))
            label, doc = label or domain_label, doc or domain_doc
        return FieldSpec(
            name=name,
            raw_name=raw,
            domain=domain,
            type=self.wire_type(declared, f"field {where}.{raw}"),
            reserved=self.flag(e, "reserved"),
            label=label,
            doc=doc,
        )

    def amqp_class(self, e: ElementTree.Element) -> ClassSpec:
        name = self.attr(e, "name")
        if not _camel(name).isidentifier():
            raise self.fail(f"class {name!r} does not make a Python name")
        class_id = self.int_attr(e, "index")
        properties = tuple(self.field(f, name) for f in e.findall("field"))
        methods = tuple(self.method(m, name, class_id) for m in e.findall("method"))
        by_id: dict[int, MethodSpec] = {}
        for m in methods:
            if m.id in by_id:
                raise self.fail(
                    f"class {name}: methods {by_id[m.id].name} and {m.name} share id {m.id}"
                )
            by_id[m.id] = m
        return ClassSpec(
            name=name,
            id=class_id,
            handler=e.get("handler", ""),
            methods=methods,
            properties=properties,
            method_by_name={m.name: m for m in methods},
            method_by_id=by_id,
            label=e.get("label", ""),
            doc=_doc(e),
        )

    def method(self, e: ElementTree.Element, class_name: str, class_id: int) -> MethodSpec:
        name = self.attr(e, "name")
        if not _camel(name).isidentifier():
            raise self.fail(f"method {class_name}.{name!r} does not make a Python name")
        full = f"{class_name}.{name}"
        return MethodSpec(
            name=name,
            full_name=full,
            python_name=python_name(f"{class_name}_{name}"),
            class_name=class_name,
            id=self.int_attr(e, "index"),
            class_id=class_id,
            synchronous=self.flag(e, "synchronous"),
            content=self.flag(e, "content"),
            responses=tuple(self.attr(r, "name") for r in e.findall("response")),
            chassis=frozenset(self.attr(c, "name") for c in e.findall("chassis")),
            fields=tuple(self.field(f, full) for f in e.findall("field")),
            deprecated=self.flag(e, "deprecated"),
            label=e.get("label", ""),
            doc=_doc(e),
        )


def _doc(e: ElementTree.Element) -> str:
    """
    The text of C{e}'s first untyped C{<doc>} (typed ones hold grammar and
    test scenarios), as paragraphs separated by a blank line, each on one
    line.
    """
    for doc in e.findall("doc"):
        if doc.get("type") is None:
            paragraphs = re.split(r"\n\s*\n", (doc.text or "").strip())
            return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return ""


def class_name(raw: str) -> str:
    """
    The CamelCase Python class name for a spec name: C{"declare-ok"} becomes
    C{"DeclareOk"}.
    """
    return _camel(raw)
