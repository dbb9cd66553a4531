# -*- test-case-name: tests.test_testing -*-
"""
What a L{MemoryBroker<txamqp_next.testing.MemoryBroker>} holds: virtual
hosts, their exchanges and queues, bindings and messages, and the routing
rules of the four exchange types.  Plain data, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txamqp_next.testing._server import ServerConnection, ServerConsumer

__all__ = ["EXCHANGE_TYPES", "Binding", "Exchange", "Fault", "Message", "Queue", "VirtualHost"]

#: the exchange types the broker routes for
EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")


class Fault(Exception):
    """
    A request the broker refuses: it closes the channel (a soft error) or
    the connection (a hard one) with C{reply_code} and C{reply_text}, as
    RabbitMQ does.
    """

    def __init__(self, reply_code: int, reply_text: str, hard: bool = False) -> None:
        super().__init__(reply_code, reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.hard = hard


@dataclass
class Message:
    """
    A message held by the broker.

    @ivar exchange: the exchange it was published to.
    @ivar routing_key: the routing key it was published with.
    @ivar properties: its content properties (C{Basic.Properties}).
    @ivar body: its body.
    @ivar redelivered: whether it was delivered before and put back.
    """

    exchange: str
    routing_key: str
    properties: Any
    body: bytes
    redelivered: bool = False


@dataclass(frozen=True)
class Binding:
    """
    A binding from an exchange to a queue or to another exchange.

    @ivar destination: the queue's or exchange's name.
    @ivar routing_key: the binding key.
    @ivar arguments: the binding arguments (C{x-match} and the headers of a
        headers exchange).
    @ivar to_exchange: whether C{destination} is an exchange.
    """

    destination: str
    routing_key: str
    arguments: tuple[tuple[str, Any], ...] = ()
    to_exchange: bool = False

    def matches(self, kind: str, routing_key: str, headers: dict[str, Any] | None) -> bool:
        """
        Whether a message with C{routing_key} and C{headers} goes through
        this binding of an exchange of type C{kind}.
        """
        if kind == "fanout":
            return True
        if kind == "direct":
            return routing_key == self.routing_key
        if kind == "topic":
            return topic_matches(self.routing_key.split("."), routing_key.split("."))
        return headers_match(dict(self.arguments), headers or {})


def topic_matches(pattern: list[str], words: list[str]) -> bool:
    """
    Whether the words of a routing key match a topic pattern's words:
    C{*} stands for one word, C{#} for zero or more.
    """
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(topic_matches(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and topic_matches(rest, words[1:])


def headers_match(arguments: dict[str, Any], headers: dict[str, Any]) -> bool:
    """
    Whether C{headers} match a headers binding's C{arguments}: all of them
    (C{x-match} C{all}, the default) or any (C{any}); arguments starting
    with C{x-} are not matched, and a void argument matches any value.
    """
    wanted = {k: v for k, v in arguments.items() if not k.startswith("x-")}
    hits = [k in headers and (v is None or headers[k] == v) for k, v in wanted.items()]
    if arguments.get("x-match", "all") == "any":
        return any(hits)
    return all(hits)


@dataclass
class Exchange:
    """
    An exchange.

    @ivar bindings: where it routes to.
    """

    name: str
    type: str
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)


@dataclass
class Queue:
    """
    A queue.

    @ivar messages: the messages ready for delivery, oldest first.
    @ivar consumers: its consumers, in round-robin order.
    @ivar owner: the connection an exclusive queue belongs to.
    """

    name: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    owner: ServerConnection | None = None
    messages: deque[Message] = field(default_factory=deque)
    consumers: list[ServerConsumer] = field(default_factory=list)
    had_consumers: bool = False

    def bodies(self) -> list[bytes]:
        """
        The bodies of the messages ready in the queue, oldest first.
        """
        return [m.body for m in self.messages]


@dataclass
class VirtualHost:
    """
    A virtual host: its exchanges (the default one and the C{amq.*} ones to
    start with) and queues.
    """

    name: str
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, kind in [
            ("", "direct"),
            ("amq.direct", "direct"),
            ("amq.fanout", "fanout"),
            ("amq.topic", "topic"),
            ("amq.headers", "headers"),
            ("amq.match", "headers"),
        ]:
            self.exchanges[name] = Exchange(name, kind, durable=True)

    def exchange(self, name: str) -> Exchange:
        """
        The exchange called C{name}.

        @raise Fault: 404, there is none.
        """
        try:
            return self.exchanges[name]
        except KeyError:
            raise Fault(404, f"NOT_FOUND - no exchange '{name}' in vhost '{self.name}'") from None

    def queue(self, name: str) -> Queue:
        """
        The queue called C{name}.

        @raise Fault: 404, there is none.
        """
        try:
            return self.queues[name]
        except KeyError:
            raise Fault(404, f"NOT_FOUND - no queue '{name}' in vhost '{self.name}'") from None

    def route(self, exchange: str, routing_key: str, headers: dict[str, Any] | None) -> list[Queue]:
        """
        The queues a message published to C{exchange} goes to, each once,
        following exchange-to-exchange bindings.

        @raise Fault: 404, the exchange does not exist.
        """
        if exchange == "":
            queue = self.queues.get(routing_key)
            return [queue] if queue is not None else []
        found: dict[str, Queue] = {}
        seen: set[str] = set()
        todo = [self.exchange(exchange)]
        while todo:
            current = todo.pop()
            if current.name in seen:
                continue
            seen.add(current.name)
            for binding in current.bindings:
                if not binding.matches(current.type, routing_key, headers):
                    continue
                if binding.to_exchange:
                    target = self.exchanges.get(binding.destination)
                    if target is not None:
                        todo.append(target)
                elif binding.destination in self.queues:
                    found.setdefault(binding.destination, self.queues[binding.destination])
        return list(found.values())

    def unbind_destination(self, name: str, to_exchange: bool) -> None:
        """
        Drop every binding to queue or exchange C{name} (it was deleted),
        and the auto-delete exchanges left without bindings.
        """
        for exchange in list(self.exchanges.values()):
            before = len(exchange.bindings)
            exchange.bindings = [
                b
                for b in exchange.bindings
                if not (b.destination == name and b.to_exchange == to_exchange)
            ]
            if before and not exchange.bindings:
                self.drop_if_unused(exchange)

    def drop_if_unused(self, exchange: Exchange) -> None:
        """
        Delete C{exchange} if it is auto-delete and has no bindings left.
        """
        if exchange.auto_delete and not exchange.bindings and exchange.name in self.exchanges:
            del self.exchanges[exchange.name]
            self.unbind_destination(exchange.name, True)
