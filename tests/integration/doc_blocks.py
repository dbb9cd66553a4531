"""
Read the fenced code blocks of the project's Markdown documents, for
L{tests.integration.test_docs}.

A block is what lies between an opening fence (three or more backticks and a
language, possibly indented, as inside a list item) and the closing fence.
A Python block may be preceded by a marker, an HTML comment that Markdown
does not show::

    <!-- context: channel
         amqp://app:secret@rabbit1,rabbit2/prod -> {url}
    -->

Its first line names the context the block runs in; each further line
C{OLD -> NEW} says that the text C{OLD}, which must occur in the block,
stands for C{NEW} when the block runs (C{NEW} may name fields that the test
fills in, such as C{{url}}).  A block may be followed by C{<!-- output -->}
and a block holding what it prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<language>[^`\s]*)\s*$")
MARKER = re.compile(r"<!--\s*context:(?P<body>.*?)-->", re.S)
OUTPUT = re.compile(r"<!--\s*output\s*-->")


@dataclass(frozen=True)
class Block:
    """
    One fenced Python block.

    @ivar path: the document, relative to the repository's root.
    @ivar line: the line of the opening fence (counting from 1).
    @ivar index: the block's position among the Python blocks of its
        document (counting from 1).
    @ivar code: the block's text, without the fences' indentation.
    @ivar context: the context its marker names, or L{None} for a complete
        program.
    @ivar replacements: the marker's C{(OLD, NEW)} pairs.
    @ivar output: what the document shows the block printing, or L{None}.
    """

    path: str
    line: int
    index: int
    code: str
    context: str | None = None
    replacements: tuple[tuple[str, str], ...] = ()
    output: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Document:
    """
    A document's Python blocks and what is wrong with its fences and
    markers.
    """

    path: str
    blocks: list[Block]
    problems: list[str]


def documents() -> list[Path]:
    """
    The documents whose examples run: C{README.md} and every C{docs/*.md}.
    """
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _fences(lines: list[str]) -> list[tuple[int, int, str, str]]:
    """
    @return: C{(opening line index, closing line index, language, text)} of
        each fenced block, indexes counting from 0.
    @raise ValueError: a fence is never closed.
    """
    found = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        for j in range(i + 1, len(lines)):
            closing = FENCE.match(lines[j])
            if closing and closing["ticks"] == ticks and not closing["language"]:
                body = [
                    line[len(indent) :] if line.startswith(indent) else line
                    for line in lines[i + 1 : j]
                ]
                found.append((i, j, opening["language"], "\n".join(body) + "\n"))
                i = j + 1
                break
        else:
            raise ValueError(f"the fence on line {i + 1} is never closed")
    return found


def _before(lines: list[str], index: int) -> tuple[int, str]:
    """
    The paragraph just above line C{index} (blank lines skipped), so that a
    marker may span several lines.

    @return: the index of its first line, and its text.
    """
    j = index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    end = j
    while j >= 0 and lines[j].strip():
        j -= 1
    return j + 1, "\n".join(lines[j + 1 : end + 1]).strip()


def _parse_marker(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    match = MARKER.fullmatch(text)
    assert match is not None
    first, *rest = match["body"].strip().splitlines()
    pairs = []
    for line in rest:
        if line.strip():
            old, arrow, new = line.strip().rpartition(" -> ")
            if not arrow:
                raise ValueError(f"a marker line is not 'OLD -> NEW': {line.strip()!r}")
            pairs.append((old.strip(), new.strip()))
    return first.strip(), tuple(pairs)


def read(path: Path) -> Document:
    """
    Read a document's Python blocks, their markers and shown output.
    """
    relative = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    problems: list[str] = []
    blocks: list[Block] = []
    try:
        fences = _fences(lines)
    except ValueError as e:
        return Document(relative, [], [f"{relative}: {e}"])
    outputs = {}
    for k, (start, _, language, text) in enumerate(fences):
        if not language:
            problems.append(
                f"{relative}:{start + 1}: a fence without a language (python, sh, text, ...)"
            )
        if OUTPUT.fullmatch(_before(lines, start)[1]):
            if k == 0 or fences[k - 1][2] != "python":
                problems.append(f"{relative}:{start + 1}: '<!-- output -->' after no python block")
            else:
                outputs[k - 1] = text
    index = 0
    used = set()
    for k, (start, _, language, text) in enumerate(fences):
        top, above = _before(lines, start)
        marked = MARKER.fullmatch(above) is not None
        if marked:
            used.add(top)
        if language != "python":
            if marked:
                problems.append(f"{relative}:{start + 1}: a context marker on a {language} block")
            continue
        index += 1
        context, replacements = None, ()
        if marked:
            try:
                context, replacements = _parse_marker(above)
            except ValueError as e:
                problems.append(f"{relative}:{start + 1}: {e}")
        for old, _ in replacements:
            if old not in text:
                problems.append(f"{relative}:{start + 1}: the marker's {old!r} is not in the block")
        blocks.append(
            Block(relative, start + 1, index, text, context, replacements, outputs.get(k))
        )
    for number, line in enumerate(lines):
        if line.lstrip().startswith("<!-- context:") and number not in used:
            problems.append(f"{relative}:{number + 1}: a context marker that no fence follows")
    return Document(relative, blocks, problems)
