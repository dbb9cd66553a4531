# -*- test-case-name: tests.test_generated -*-
"""
Epytext docstrings from a spec's own text: its labels and C{<doc>}
elements.

The generated L{txamqp_next.methods} module and the method classes built at
run time (L{txamqp_next._methods}) take their docstrings from here, so
C{help(channel.queue_declare)} shows the same text for every spec that
carries documentation.  The stripped spec files of C{amqp-specs} carry
none; their methods get a one-line docstring.
"""

from __future__ import annotations

import re
import textwrap

from txamqp_next.spec import ClassSpec, FieldSpec, MethodSpec

__all__ = ["class_doc", "field_text", "method_doc", "properties_doc"]

WIDTH = 76
_ESCAPES = {"{": "E{lb}", "}": "E{rb}"}


def escape(text: str) -> str:
    """
    Escape the characters epytext reads as markup in plain spec text.
    """
    return re.sub(r"[{}]", lambda m: _ESCAPES[m.group()], text)


def sentence(text: str) -> str:
    """
    C{text} with a capital first letter and a closing full stop.
    """
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!", ":")) else text + "."


def _paragraphs(doc: str) -> list[str]:
    return [escape(p) for p in doc.split("\n\n") if p.strip()]


def _wrap(text: str, indent: str = "", first: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def field_text(field: FieldSpec) -> str:
    """
    One paragraph on a field: its label as a sentence, then its doc.
    """
    parts = [sentence(escape(field.label))] if field.label else []
    parts.extend(_paragraphs(field.doc))
    return " ".join(parts)


def _body(label: str, doc: str, head: str) -> list[str]:
    label = escape(label.strip())
    first = f"{label[:1].upper()}{label[1:]} ({head})." if label else f"{head}."
    lines = _wrap(first)
    for paragraph in _paragraphs(doc):
        lines.append("")
        lines.extend(_wrap(paragraph))
    return lines


def _field_lines(tag: str, fields: tuple[FieldSpec, ...]) -> list[str]:
    lines: list[str] = []
    for field in fields:
        if field.reserved:
            continue
        text = field_text(field) or f"A C{{{field.type}}}."
        lines.extend(_wrap(text, indent="    ", first=f"@{tag} {field.name}: "))
    return lines


def method_doc(method: MethodSpec, returns: str | None = None, params: bool = True) -> str:
    """
    The docstring of a method: its label and doc, then a line on each field
    (C{@param} for a channel call, C{@ivar} for a method class).

    @param returns: the C{@return} text, for a channel call.
    @param params: C{@param} lines when true, C{@ivar} lines otherwise.
    """
    head = f"C{{{method.full_name}}}, {method.class_id}.{method.id}"
    lines = _body(method.label, method.doc, head)
    fields = _field_lines("param" if params else "ivar", method.fields)
    if fields or returns:
        lines.append("")
        lines.extend(fields)
    if returns:
        lines.extend(
            _wrap(
                "fields of another spec's method (0-8's C{ticket}), at run time; "
                "the default spec has none, so a type checker refuses any.",
                indent="    ",
                first="@param more: ",
            )
        )
        lines.extend(_wrap(returns, indent="    ", first="@return: "))
    return "\n".join(lines)


def class_doc(amqp_class: ClassSpec) -> str:
    """
    The docstring of an AMQP class's namespace.
    """
    head = f"C{{{amqp_class.name}}}, {amqp_class.id}"
    return "\n".join(_body(amqp_class.label, amqp_class.doc, head))


def properties_doc(amqp_class: ClassSpec) -> str:
    """
    The docstring of a class's content properties: a line on each.
    """
    lines = _wrap(
        f"The content properties of the AMQP class C{{{amqp_class.name}}}; "
        "each is C{None} when absent."
    )
    fields = _field_lines("ivar", amqp_class.properties)
    if fields:
        lines.append("")
        lines.extend(fields)
    return "\n".join(lines)
