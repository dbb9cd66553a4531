# -*- test-case-name: tests.test_message -*-
"""
L{Content}: a message body with its properties, as txAMQP spelled it.

New code passes C{body=} and C{properties=} to C{basic_publish} and reads
C{message.body} and C{message.properties}.  Code written for txAMQP builds a
C{Content} and reads C{message.content}; both work.

Property names may be written the spec's way (C{"delivery-mode"}), the 0-8
way (C{"delivery mode"}) or the Python way (C{"delivery_mode"}): they mean
the same property.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from txamqp_next.spec import python_name

__all__ = ["Content", "PropertyDict"]


class PropertyDict(MutableMapping[str, Any]):
    """
    A dict of content properties whose keys are normalised: C{"content-type"},
    C{"content type"} and C{"content_type"} are one key.  Iteration yields
    the Python names.
    """

    def __init__(self, items: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._data: dict[str, Any] = {}
        if items:
            self.update(items)
        if kwargs:
            self.update(kwargs)

    def __getitem__(self, key: str) -> Any:
        return self._data[python_name(key)]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[python_name(key)] = value

    def __delitem__(self, key: str) -> None:
        del self._data[python_name(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and python_name(key) in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        """
        Equal to any mapping with the same properties, whatever the
        spelling of its keys (txAMQP's C{{"delivery-mode": 2}}).
        """
        if not isinstance(other, Mapping):
            return NotImplemented
        try:
            return self._data == {python_name(k): v for k, v in other.items()}
        except AttributeError:
            return False

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> PropertyDict:
        return PropertyDict(self._data)

    def __repr__(self) -> str:
        return f"PropertyDict({self._data!r})"


class Content:
    """
    A body and its properties (txAMQP's C{txamqp.content.Content}).

    Unlike txAMQP, a received body is always C{bytes}; a C{str} body given
    here is sent as UTF-8.

    @ivar body: the body.
    @ivar properties: a L{PropertyDict}.
    @ivar children: always empty; kept for txAMQP code that reads it.
    """

    def __init__(
        self,
        body: bytes | str = b"",
        children: list[Content] | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self.body = body
        self.children = list(children or [])
        self.properties = PropertyDict(properties)

    def size(self) -> int:
        """
        The body's size in bytes.
        """
        return len(self.body_bytes())

    def weight(self) -> int:
        """
        The number of child contents (always 0 in AMQP 0-9-1).
        """
        return len(self.children)

    def body_bytes(self) -> bytes:
        """
        The body as bytes (a C{str} body encoded as UTF-8).
        """
        return self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)

    def __getitem__(self, name: str) -> Any:
        return self.properties[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.properties[name] = value

    def __delitem__(self, name: str) -> None:
        del self.properties[name]

    def __contains__(self, name: str) -> bool:
        return name in self.properties

    def __repr__(self) -> str:
        return f"Content({self.body!r}, properties={dict(self.properties)!r})"
