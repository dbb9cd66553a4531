# -*- test-case-name: tests.test_message -*-
"""
L{Message}: a received method with its content (a delivery, a
C{basic.get-ok} or a returned message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from txamqp_next._methods import Method, Properties
from txamqp_next.methods import BasicProperties

if TYPE_CHECKING:
    from txamqp_next.channel import Channel

__all__ = ["Message"]


class Message:
    """
    A message that arrived on a channel.

    The method's fields read as attributes: C{message.delivery_tag},
    C{message.routing_key}, C{message.consumer_tag}, C{message.redelivered}.

    @ivar channel: the L{Channel} it arrived on.
    @ivar method: the C{Basic.Deliver}, C{Basic.GetOk} or C{Basic.Return}.
    @ivar properties: its C{Basic.Properties} (typed as the default spec's
        L{BasicProperties}: C{message.properties.content_type} is a
        C{str | None}).
    @ivar body: the body, always C{bytes}.
    """

    __slots__ = ("body", "channel", "method", "properties")

    properties: BasicProperties

    def __init__(
        self, channel: Channel, method: Method, properties: Properties, body: bytes
    ) -> None:
        self.channel = channel
        self.method = method
        self.properties = properties  # type: ignore[assignment]
        self.body = body

    def __getattr__(self, name: str) -> Any:
        method = object.__getattribute__(self, "method")
        if name in method.field_names:
            return getattr(method, name)
        raise AttributeError(f"{method.NAME} message has no attribute {name!r}")

    @property
    def headers(self) -> dict[str, Any]:
        """
        The C{headers} property, or an empty dict.
        """
        return getattr(self.properties, "headers", None) or {}

    def ack(self, multiple: bool = False) -> Deferred[None]:
        """
        Acknowledge this delivery (C{basic.ack}).

        @return: a L{Deferred} that fires once the ack is handed to the
            transport, or fails with the channel's error if it is closed.
        """
        return self.channel.basic_ack(delivery_tag=self.method.delivery_tag, multiple=multiple)

    def nack(self, requeue: bool = True, multiple: bool = False) -> Deferred[None]:
        """
        Reject this delivery (C{basic.nack}); the broker requeues it unless
        C{requeue} is false.

        @return: as L{ack}; it fails with L{errors.LocalProtocolError} when
            the spec has no C{basic.nack} (before RabbitMQ's 0-9-1).
        """
        return self.channel.invoke(
            "basic.nack", delivery_tag=self.delivery_tag, multiple=multiple, requeue=requeue
        )

    def reject(self, requeue: bool = True) -> Deferred[None]:
        """
        Reject this delivery (C{basic.reject}).
        """
        return self.channel.invoke("basic.reject", delivery_tag=self.delivery_tag, requeue=requeue)

    def __repr__(self) -> str:
        return f"<Message {self.method!r} {self.properties!r} body={len(self.body)} bytes>"
