# -*- test-case-name: tests.test_testing -*-
"""
The broker's side of one connection of a
L{MemoryBroker<txamqp_next.testing.MemoryBroker>}: it reads the client's
frames with the sans-IO frame reader and method decoders, answers as
RabbitMQ does, and queues its own frames until the broker is flushed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from txamqp_next import _frames
from txamqp_next._codec import decode_table
from txamqp_next._methods import Method, MethodSet, Properties
from txamqp_next.testing._model import EXCHANGE_TYPES, Binding, Exchange, Fault, Message, Queue

if TYPE_CHECKING:
    from txamqp_next.testing._broker import MemoryBroker

__all__ = ["Published", "ServerChannel", "ServerConnection", "ServerConsumer"]

_LOCKED = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost "
    "'{vhost}'. It could be originally declared on another connection or the exclusive "
    "property value does not match that of the original declaration."
)


def server_name(prefix: str, number: int) -> str:
    """
    A server-generated name like RabbitMQ's (C{amq.gen-} and 22 characters),
    the same on every run.
    """
    digest = hashlib.blake2b(number.to_bytes(8, "big"), digest_size=16).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass
class Published:
    """
    A message a client published, as the broker received it.

    @ivar connection: the number of the connection it came on (from 1).
    @ivar channel: the channel id.
    @ivar exchange: the exchange.
    @ivar routing_key: the routing key.
    @ivar properties: its content properties.
    @ivar body: its body.
    @ivar mandatory: whether it was published mandatory.
    @ivar queues: the queues it was routed to.
    """

    connection: int
    channel: int
    exchange: str
    routing_key: str
    properties: Any
    body: bytes
    mandatory: bool = False
    queues: list[str] = field(default_factory=list)


@dataclass
class ServerConsumer:
    """
    A consumer, as the broker knows it.

    @ivar limit: its prefetch count (C{0}: none), from the channel's
        C{basic.qos} when it started.
    @ivar unacked: how many of its deliveries await an ack.
    """

    tag: str
    queue: Queue
    channel: ServerChannel
    no_ack: bool = False
    exclusive: bool = False
    limit: int = 0
    unacked: int = 0

    def can_take(self) -> bool:
        """
        Whether a delivery to it now keeps within its and its channel's
        prefetch counts.
        """
        if self.no_ack:
            return True
        if self.limit and self.unacked >= self.limit:
            return False
        channel = self.channel
        return not channel.global_limit or len(channel.unacked) < channel.global_limit


@dataclass
class _Unacked:
    queue: Queue
    message: Message
    consumer_tag: str | None


@dataclass
class _Pending:
    method: Method
    properties: Properties | None = None
    size: int = 0
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


class ServerChannel:
    """
    The broker's side of one channel.

    @ivar id: the channel id.
    @ivar consumers: consumer tag to L{ServerConsumer}.
    @ivar unacked: delivery tag to the message awaiting its ack.
    @ivar confirming: whether the channel is in confirm mode.
    @ivar transactional: whether the channel is in tx mode.
    @ivar held_confirms: the publish sequence numbers whose confirm is held
        (see L{MemoryBroker.hold_confirms}).
    """

    def __init__(self, connection: ServerConnection, id: int) -> None:
        self.connection = connection
        self.id = id
        self.consumers: dict[str, ServerConsumer] = {}
        self.unacked: dict[int, _Unacked] = {}
        self.next_tag = 1
        self.limit = 0
        self.global_limit = 0
        self.confirming = False
        self.transactional = False
        self.published = 0
        self.held_confirms: list[int] = []
        self.tx_work: list[Callable[[], None]] = []
        self.closing = False
        self.last_queue = ""
        self.pending: _Pending | None = None

    def deliver(self, consumer: ServerConsumer, message: Message) -> None:
        """
        Send C{message} to C{consumer} with a new delivery tag.
        """
        tag = self._track(consumer.queue, message, consumer if not consumer.no_ack else None)
        self.connection.send_content(
            self.id,
            "basic.deliver",
            message,
            consumer_tag=consumer.tag,
            delivery_tag=tag,
            redelivered=message.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
        )

    def _track(self, queue: Queue, message: Message, consumer: ServerConsumer | None) -> int:
        tag = self.next_tag
        self.next_tag += 1
        if consumer is not None:
            consumer.unacked += 1
            self.unacked[tag] = _Unacked(queue, message, consumer.tag)
        return tag

    def settle(self, name: str, delivery_tag: int, multiple: bool, requeue: bool) -> None:
        """
        Ack (C{basic.ack}) or give back (C{basic.nack}, C{basic.reject})
        deliveries.

        @raise Fault: 406, C{delivery_tag} is not awaiting an ack.
        """
        if multiple and delivery_tag == 0:
            tags = list(self.unacked)
        elif delivery_tag not in self.unacked:
            raise Fault(406, f"PRECONDITION_FAILED - unknown delivery tag {delivery_tag}")
        elif multiple:
            tags = [t for t in self.unacked if t <= delivery_tag]
        else:
            tags = [delivery_tag]
        back = [self._forget(tag) for tag in tags]
        if name != "basic.ack" and requeue:
            self._requeue(back)

    def _forget(self, tag: int) -> _Unacked:
        entry = self.unacked.pop(tag)
        consumer = self.consumers.get(entry.consumer_tag or "")
        if consumer is not None:
            consumer.unacked -= 1
        return entry

    def _requeue(self, entries: list[_Unacked]) -> None:
        for entry in reversed(entries):
            entry.message.redelivered = True
            if entry.queue.name in self.connection.vhost.queues:
                entry.queue.messages.appendleft(entry.message)

    def requeue_all(self) -> None:
        """
        Put every delivery awaiting its ack back in its queue, redelivered.
        """
        self._requeue([self._forget(tag) for tag in list(self.unacked)])

    def teardown(self) -> None:
        """
        The channel is closed: its consumers go, its unacked messages go
        back to their queues.
        """
        for consumer in list(self.consumers.values()):
            self.connection.broker.remove_consumer(consumer)
        self.requeue_all()
        self.held_confirms.clear()
        self.tx_work.clear()


class ServerConnection:
    """
    The broker's side of one client connection.

    @ivar broker: the L{MemoryBroker}.
    @ivar number: its number, from 1, in the order connections were made.
    @ivar protocol: the client's protocol.
    @ivar methods: C{(channel, method)} for each method the client sent.
    @ivar channels: channel id to L{ServerChannel}, for open channels.
    @ivar username: who logged in.
    @ivar vhost_name: the virtual host opened.
    @ivar client_properties: the client's C{start-ok} properties.
    @ivar frame_max: the frame size agreed in C{tune-ok}.
    @ivar heartbeat: the heartbeat interval agreed in C{tune-ok}.
    @ivar open: whether the handshake is done and the connection not closed.
    @ivar ended: whether the transport is gone.
    """

    def __init__(self, broker: MemoryBroker, number: int, protocol: Any) -> None:
        self.broker = broker
        self.number = number
        self.protocol = protocol
        self.spec = protocol.spec
        self.method_set: MethodSet = protocol.core.methods
        self.methods: list[tuple[int, Method]] = []
        self.channels: dict[int, ServerChannel] = {}
        self.username = ""
        self.vhost_name = ""
        self.client_properties: dict[str, Any] = {}
        self.frame_max = broker.frame_max
        self.heartbeat = 0
        self.open = False
        self.closing = False
        self.ended = False
        self.outbox: list[bytes] = []
        self._header_seen = False
        self._reader = _frames.FrameReader(0)
        self._heartbeat_call: Any = None

    def __repr__(self) -> str:
        return f"<ServerConnection {self.number} vhost={self.vhost_name!r}>"

    @property
    def vhost(self) -> Any:
        """
        The L{VirtualHost} this connection opened.
        """
        return self.broker.vhosts[self.vhost_name]

    def names(self) -> list[tuple[int, str]]:
        """
        C{(channel, method name)} for each method the client sent.
        """
        return [(channel, method.NAME) for channel, method in self.methods]

    @property
    def cancel_notify(self) -> bool:
        """
        Whether the client said it takes C{basic.cancel} from the broker.
        """
        capabilities = self.client_properties.get("capabilities") or {}
        return bool(capabilities.get("consumer_cancel_notify"))

    # -- sending ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """
        Queue C{data} for the client; L{MemoryBroker.flush} delivers it.
        """
        if not self.ended:
            self.outbox.append(data)

    def send_method(self, channel: int, name: str, **fields: Any) -> None:
        """
        Queue a method for the client.
        """
        method = self.method_set.make(name, (), fields)
        self.send(_frames.method_frame(channel, method.encode()))

    def send_content(self, channel: int, name: str, message: Message, **fields: Any) -> None:
        """
        Queue a content-carrying method with C{message}'s properties and
        body, split into frames of at most the agreed frame size.
        """
        method = self.method_set.make(name, (), fields)
        properties = message.properties
        if properties is None:
            properties = self.method_set.properties[method.CLASS_ID]()
        frames = [_frames.method_frame(channel, method.encode())]
        frames += _frames.content_frames(
            channel, properties.encode_header(len(message.body)), message.body, self.frame_max
        )
        self.send(b"".join(frames))

    def close(
        self, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        """
        Close the connection from the broker's side (C{connection.close}),
        as RabbitMQ does on a hard error or C{rabbitmqctl close_connection}
        (320 C{CONNECTION_FORCED}); the transport ends once the client
        answers C{close-ok}.
        """
        if self.closing or self.ended:
            return
        self.closing = True
        self.send_method(
            0,
            "connection.close",
            reply_code=reply_code,
            reply_text=reply_text,
            class_id=class_id,
            method_id=method_id,
        )
        self._end_session()

    def close_channel(
        self, channel: int, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        """
        Close channel C{channel} from the broker's side (C{channel.close}).
        """
        server_channel = self.channels.get(channel)
        if server_channel is None or server_channel.closing:
            return
        server_channel.closing = True
        server_channel.teardown()
        self.send_method(
            channel,
            "channel.close",
            reply_code=reply_code,
            reply_text=reply_text,
            class_id=class_id,
            method_id=method_id,
        )
        self.broker.dispatch()

    def lose(self) -> None:
        """
        This connection drops at once, as when the network fails (see
        L{MemoryBroker.lose}).
        """
        self.broker.lose(self)

    def confirm(self, channel: int, delivery_tag: int | None = None, ack: bool = True) -> None:
        """
        Send the publisher confirms held on C{channel} (see
        L{MemoryBroker.hold_confirms}): each up to C{delivery_tag}, or all.

        @param ack: C{True} for C{basic.ack}, C{False} for C{basic.nack}.
        """
        server_channel = self.channels[channel]
        held = server_channel.held_confirms
        chosen = [t for t in held if delivery_tag is None or t <= delivery_tag]
        server_channel.held_confirms = [t for t in held if t not in chosen]
        for tag in chosen:
            self.send_method(
                channel, "basic.ack" if ack else "basic.nack", delivery_tag=tag, multiple=False
            )

    def cancel_consumer(self, consumer: ServerConsumer) -> None:
        """
        The broker cancels C{consumer} (its queue went away, or a test asked):
        a C{basic.cancel} goes to a client that advertised
        C{consumer_cancel_notify}.
        """
        self.broker.remove_consumer(consumer)
        if self.cancel_notify and not consumer.channel.closing:
            self.send_method(
                consumer.channel.id, "basic.cancel", consumer_tag=consumer.tag, no_wait=True
            )

    # -- receiving -------------------------------------------------------------

    def received(self, data: bytes) -> None:
        """
        The client wrote C{data}.
        """
        if self.ended:
            return
        if not self._header_seen:
            self._header_seen = True
            if data[:8] != self.spec.protocol_header:
                self.send(self.spec.protocol_header)
                self.broker.drop(self)
                return
            data = data[8:]
            self.send_method(
                0,
                "connection.start",
                version_major=self.spec.major,
                version_minor=self.spec.minor,
                server_properties=self.broker.server_properties,
                mechanisms=b"PLAIN AMQPLAIN",
                locales=b"en_US",
            )
        self._reader.feed(data)
        while not self.ended:
            frame = self._reader.next_frame()
            if frame is _frames.NEED_DATA:
                return
            assert isinstance(frame, tuple)
            kind, channel, payload = frame
            if kind == _frames.FRAME_METHOD:
                method = self.method_set.decode(payload)
                self.methods.append((channel, method))
                self._method(channel, method)
            elif kind in (_frames.FRAME_HEADER, _frames.FRAME_BODY):
                self._content(kind, channel, payload)

    def _method(self, channel: int, method: Method) -> None:
        if self.closing:
            if method.NAME == "connection.close-ok":
                self.broker.drop(self)
            elif method.NAME == "connection.close":
                self.send_method(0, "connection.close-ok")
            return
        try:
            if method.CONNECTION_CLASS:
                self._connection_method(method)
            else:
                self._channel_method(channel, method)
        except Fault as fault:
            if fault.hard or channel == 0:
                self.close(fault.reply_code, fault.reply_text, method.CLASS_ID, method.METHOD_ID)
            else:
                self.close_channel(
                    channel, fault.reply_code, fault.reply_text, method.CLASS_ID, method.METHOD_ID
                )

    def _connection_method(self, method: Method) -> None:
        name = method.NAME
        broker = self.broker
        if name == "connection.start-ok":
            self.client_properties = dict(method.client_properties or {})
            username, password = _credentials(method.mechanism, method.response)
            if broker.users.get(username) != password or not username:
                raise Fault(
                    403,
                    "ACCESS_REFUSED - Login was refused using authentication mechanism "
                    f"{method.mechanism}. For details see the broker logfile.",
                )
            self.username = username
            self.send_method(
                0,
                "connection.tune",
                channel_max=broker.channel_max,
                frame_max=broker.frame_max,
                heartbeat=broker.heartbeat,
            )
        elif name == "connection.tune-ok":
            self.frame_max = method.frame_max or broker.frame_max
            self.heartbeat = method.heartbeat
            if self.heartbeat:
                self._heartbeat_call = broker.clock.callLater(self.heartbeat, self._beat)
        elif name == "connection.open":
            if method.virtual_host not in broker.vhosts:
                raise Fault(530, f"NOT_ALLOWED - vhost {method.virtual_host} not found")
            self.vhost_name = method.virtual_host
            self.open = True
            self.send_method(0, "connection.open-ok")
        elif name == "connection.close":
            self.send_method(0, "connection.close-ok")
            self.closing = True
            self._end_session()
        elif name == "connection.update-secret":
            self.send_method(0, "connection.update-secret-ok")
        else:
            raise Fault(540, f"NOT_IMPLEMENTED - {name}", hard=True)

    def _beat(self) -> None:
        self._heartbeat_call = None
        if self.ended:
            return
        self.protocol.dataReceived(_frames.HEARTBEAT)
        self._heartbeat_call = self.broker.clock.callLater(self.heartbeat, self._beat)

    def _channel_method(self, channel: int, method: Method) -> None:
        name = method.NAME
        server_channel = self.channels.get(channel)
        if name == "channel.open":
            if server_channel is not None:
                raise Fault(504, "CHANNEL_ERROR - second 'channel.open' seen", hard=True)
            self.channels[channel] = ServerChannel(self, channel)
            self.send_method(channel, "channel.open-ok")
            return
        if server_channel is None:
            raise Fault(504, "CHANNEL_ERROR - expected 'channel.open'", hard=True)
        if name == "channel.close-ok":
            del self.channels[channel]
            return
        if server_channel.closing:
            # a broker discards what comes on a channel it closed
            return
        if name == "channel.close":
            server_channel.teardown()
            del self.channels[channel]
            self.send_method(channel, "channel.close-ok")
            self.broker.dispatch()
            return
        if name == "basic.publish":
            if method.immediate:
                raise Fault(540, "NOT_IMPLEMENTED - immediate=true", hard=True)
            server_channel.pending = _Pending(method)
            return
        handler = _HANDLERS.get(name)
        if handler is None:
            raise Fault(540, f"NOT_IMPLEMENTED - {name}", hard=True)
        handler(self, server_channel, method)
        self.broker.dispatch()

    def _content(self, kind: int, channel: int, payload: bytes) -> None:
        server_channel = self.channels.get(channel)
        if server_channel is None or server_channel.pending is None:
            if server_channel is not None and server_channel.closing:
                return
            self.close(505, "UNEXPECTED_FRAME - content frame without basic.publish")
            return
        pending = server_channel.pending
        if kind == _frames.FRAME_HEADER:
            _, pending.size, pending.properties = self.method_set.decode_header(payload)
        else:
            pending.parts.append(bytes(payload))
            pending.received += len(payload)
        if pending.properties is not None and pending.received >= pending.size:
            server_channel.pending = None
            body = b"".join(pending.parts)
            try:
                if server_channel.transactional:
                    server_channel.tx_work.append(
                        lambda: self._publish(
                            server_channel, pending.method, pending.properties, body
                        )
                    )
                else:
                    self._publish(server_channel, pending.method, pending.properties, body)
            except Fault as fault:
                method = pending.method
                self.close_channel(
                    channel, fault.reply_code, fault.reply_text, method.CLASS_ID, method.METHOD_ID
                )
            self.broker.dispatch()

    def _publish(
        self, channel: ServerChannel, method: Method, properties: Any, body: bytes
    ) -> None:
        vhost = self.vhost
        exchange = vhost.exchange(method.exchange) if method.exchange else None
        if exchange is not None and exchange.internal:
            raise Fault(
                403,
                f"ACCESS_REFUSED - cannot publish to internal exchange '{exchange.name}' "
                f"in vhost '{vhost.name}'",
            )
        headers = getattr(properties, "headers", None)
        queues = vhost.route(method.exchange, method.routing_key, headers)
        record = Published(
            self.number,
            channel.id,
            method.exchange,
            method.routing_key,
            properties,
            body,
            bool(method.mandatory),
            [q.name for q in queues],
        )
        self.broker.published.append(record)
        for queue in queues:
            queue.messages.append(Message(method.exchange, method.routing_key, properties, body))
        if not queues and method.mandatory:
            self.broker.returned.append(record)
            self.send_content(
                channel.id,
                "basic.return",
                Message(method.exchange, method.routing_key, properties, body),
                reply_code=312,
                reply_text="NO_ROUTE",
                exchange=method.exchange,
                routing_key=method.routing_key,
            )
        if channel.confirming:
            channel.published += 1
            if self.broker.hold_confirms:
                channel.held_confirms.append(channel.published)
            else:
                self.send_method(
                    channel.id,
                    "basic.nack" if self.broker.nack_publishes else "basic.ack",
                    delivery_tag=channel.published,
                    multiple=False,
                )

    def _end_session(self) -> None:
        """
        Tear down every channel and the exclusive queues (the connection is
        closing or gone).
        """
        self.open = False
        if self._heartbeat_call is not None and self._heartbeat_call.active():
            self._heartbeat_call.cancel()
        self._heartbeat_call = None
        for server_channel in list(self.channels.values()):
            server_channel.teardown()
        self.channels.clear()
        for vhost in self.broker.vhosts.values():
            for queue in list(vhost.queues.values()):
                if queue.owner is self:
                    self.broker.delete_queue(queue.name, vhost.name)
        self.broker.dispatch()

    def reply(self, channel: ServerChannel, method: Method, name: str, **fields: Any) -> None:
        """
        Answer C{method} with C{name} unless it was sent C{no_wait}.
        """
        if not getattr(method, "no_wait", False):
            self.send_method(channel.id, name, **fields)


def _credentials(mechanism: str, response: bytes) -> tuple[str, str]:
    if mechanism == "AMQPLAIN":
        table, _ = decode_table(len(response).to_bytes(4, "big") + response, 0)
        return str(table.get("LOGIN", "")), str(table.get("PASSWORD", ""))
    if mechanism == "PLAIN":
        parts = response.split(b"\0")
        if len(parts) == 3:
            return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    return "", ""


# -- the channel methods ---------------------------------------------------------


def _exchange_declare(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    vhost = conn.vhost
    name = method.exchange
    if name == "":
        raise Fault(403, "ACCESS_REFUSED - operation not permitted on the default exchange")
    existing = vhost.exchanges.get(name)
    if method.passive:
        vhost.exchange(name)
    else:
        if method.type not in EXCHANGE_TYPES:
            raise Fault(503, f"COMMAND_INVALID - unknown exchange type '{method.type}'", hard=True)
        if existing is None and name.startswith("amq."):
            raise Fault(
                403, f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"
            )
        wanted = {
            "type": method.type,
            "durable": bool(method.durable),
            "auto_delete": bool(method.auto_delete),
            "internal": bool(method.internal),
        }
        if existing is None:
            vhost.exchanges[name] = Exchange(
                name,
                method.type,
                durable=bool(method.durable),
                auto_delete=bool(method.auto_delete),
                internal=bool(method.internal),
                arguments=dict(method.arguments or {}),
            )
        else:
            for arg, value in wanted.items():
                current = getattr(existing, arg)
                if current != value:
                    raise Fault(
                        406,
                        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{name}' "
                        f"in vhost '{vhost.name}': received {_show(value)} but current is "
                        f"{_show(current)}",
                    )
    conn.reply(channel, method, "exchange.declare-ok")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    return f"'{value}'"


def _exchange_delete(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    vhost = conn.vhost
    name = method.exchange
    if name == "":
        raise Fault(403, "ACCESS_REFUSED - operation not permitted on the default exchange")
    exchange = vhost.exchanges.get(name)
    if exchange is not None:
        if method.if_unused and exchange.bindings:
            raise Fault(
                406, f"PRECONDITION_FAILED - exchange '{name}' in vhost '{vhost.name}' in use"
            )
        del vhost.exchanges[name]
        vhost.unbind_destination(name, True)
    conn.reply(channel, method, "exchange.delete-ok")


def _exchange_bind(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    binding = Binding(
        method.destination,
        method.routing_key,
        tuple(sorted((method.arguments or {}).items())),
        to_exchange=True,
    )
    source = _bindable(conn, method.source)
    _bindable(conn, method.destination)
    _bind_or_unbind(conn, channel, method, source, binding)


def _bindable(conn: ServerConnection, name: str) -> Exchange:
    if name == "":
        raise Fault(403, "ACCESS_REFUSED - operation not permitted on the default exchange")
    exchange: Exchange = conn.vhost.exchange(name)
    return exchange


def _usable_queue(conn: ServerConnection, channel: ServerChannel, name: str) -> Queue:
    vhost = conn.vhost
    queue: Queue = vhost.queue(name or channel.last_queue)
    if queue.owner is not None and queue.owner is not conn:
        raise Fault(405, _LOCKED.format(name=queue.name, vhost=vhost.name))
    return queue


def _queue_declare(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    vhost = conn.vhost
    broker = conn.broker
    name = method.queue
    if not name and not method.passive:
        name = server_name("amq.gen-", next(broker.counter))
    elif name.startswith("amq.") and not method.passive and name not in vhost.queues:
        raise Fault(403, f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
    queue = vhost.queues.get(name)
    if queue is not None and queue.owner is not None and queue.owner is not conn:
        raise Fault(405, _LOCKED.format(name=name, vhost=vhost.name))
    if method.passive:
        queue = _usable_queue(conn, channel, name)
    elif queue is None:
        queue = Queue(
            name,
            durable=bool(method.durable),
            exclusive=bool(method.exclusive),
            auto_delete=bool(method.auto_delete),
            arguments=dict(method.arguments or {}),
            owner=conn if method.exclusive else None,
        )
        vhost.queues[name] = queue
    else:
        _equivalent(queue, method, vhost.name)
    channel.last_queue = queue.name
    conn.reply(
        channel,
        method,
        "queue.declare-ok",
        queue=queue.name,
        message_count=len(queue.messages),
        consumer_count=len(queue.consumers),
    )


def _equivalent(queue: Queue, method: Method, vhost: str) -> None:
    where = f"for queue '{queue.name}' in vhost '{vhost}'"
    for arg in ("durable", "exclusive", "auto_delete"):
        current, value = getattr(queue, arg), bool(getattr(method, arg))
        if current != value:
            raise Fault(
                406,
                f"PRECONDITION_FAILED - inequivalent arg '{arg}' {where}: received "
                f"{_show(value)} but current is {_show(current)}",
            )
    given = dict(method.arguments or {})
    for key in sorted(set(given) | set(queue.arguments)):
        if given.get(key) != queue.arguments.get(key):
            raise Fault(406, f"PRECONDITION_FAILED - inequivalent arg '{key}' {where}")


def _queue_bind(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    queue = _usable_queue(conn, channel, method.queue)
    exchange = _bindable(conn, method.exchange)
    binding = Binding(
        queue.name, method.routing_key, tuple(sorted((method.arguments or {}).items()))
    )
    _bind_or_unbind(conn, channel, method, exchange, binding)


def _bind_or_unbind(
    conn: ServerConnection,
    channel: ServerChannel,
    method: Method,
    exchange: Exchange,
    binding: Binding,
) -> None:
    """
    Add C{binding} to C{exchange} for a C{*.bind}, remove it for a
    C{*.unbind} (dropping an auto-delete exchange left unused), and reply.
    """
    if method.NAME.endswith(".bind"):
        if binding not in exchange.bindings:
            exchange.bindings.append(binding)
    elif binding in exchange.bindings:
        exchange.bindings.remove(binding)
        conn.vhost.drop_if_unused(exchange)
    conn.reply(channel, method, f"{method.NAME}-ok")


def _queue_purge(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    queue = _usable_queue(conn, channel, method.queue)
    count = len(queue.messages)
    queue.messages.clear()
    conn.reply(channel, method, "queue.purge-ok", message_count=count)


def _queue_delete(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    vhost = conn.vhost
    name = method.queue or channel.last_queue
    if name not in vhost.queues:
        conn.reply(channel, method, "queue.delete-ok", message_count=0)
        return
    queue = _usable_queue(conn, channel, name)
    where = f"queue '{name}' in vhost '{vhost.name}'"
    if method.if_unused and queue.consumers:
        raise Fault(406, f"PRECONDITION_FAILED - {where} in use")
    if method.if_empty and queue.messages:
        raise Fault(406, f"PRECONDITION_FAILED - {where} not empty")
    count = len(queue.messages)
    conn.broker.delete_queue(queue.name, vhost.name)
    conn.reply(channel, method, "queue.delete-ok", message_count=count)


def _basic_qos(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    if method.prefetch_size:
        raise Fault(540, f"NOT_IMPLEMENTED - prefetch_size!=0 ({method.prefetch_size})", hard=True)
    if method.global_:
        channel.global_limit = method.prefetch_count
    else:
        channel.limit = method.prefetch_count
    conn.send_method(channel.id, "basic.qos-ok")


def _basic_consume(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    queue = _usable_queue(conn, channel, method.queue)
    tag = method.consumer_tag or server_name("amq.ctag-", next(conn.broker.counter))
    if tag in channel.consumers:
        raise Fault(530, f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'", hard=True)
    if queue.consumers and (method.exclusive or any(c.exclusive for c in queue.consumers)):
        where = f"queue '{queue.name}' in vhost '{conn.vhost.name}'"
        raise Fault(403, f"ACCESS_REFUSED - {where} in exclusive use")
    consumer = ServerConsumer(
        tag,
        queue,
        channel,
        no_ack=bool(method.no_ack),
        exclusive=bool(method.exclusive),
        limit=channel.limit,
    )
    channel.consumers[tag] = consumer
    queue.consumers.append(consumer)
    queue.had_consumers = True
    conn.reply(channel, method, "basic.consume-ok", consumer_tag=tag)


def _basic_cancel(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    consumer = channel.consumers.get(method.consumer_tag)
    if consumer is not None:
        conn.broker.remove_consumer(consumer)
    conn.reply(channel, method, "basic.cancel-ok", consumer_tag=method.consumer_tag)


def _basic_get(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    queue = _usable_queue(conn, channel, method.queue)
    if not queue.messages:
        conn.send_method(channel.id, "basic.get-empty")
        return
    message = queue.messages.popleft()
    tag = channel.next_tag
    channel.next_tag += 1
    if not method.no_ack:
        channel.unacked[tag] = _Unacked(queue, message, None)
    conn.send_content(
        channel.id,
        "basic.get-ok",
        message,
        delivery_tag=tag,
        redelivered=message.redelivered,
        exchange=message.exchange,
        routing_key=message.routing_key,
        message_count=len(queue.messages),
    )


def _basic_settle(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    conn.broker.settled.append((conn.number, method.NAME, method))
    multiple = bool(getattr(method, "multiple", False))
    requeue = bool(getattr(method, "requeue", False))

    def settle() -> None:
        channel.settle(method.NAME, method.delivery_tag, multiple, requeue)

    if channel.transactional:
        everything = multiple and not method.delivery_tag
        if method.delivery_tag not in channel.unacked and not everything:
            raise Fault(406, f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}")
        channel.tx_work.append(settle)
    else:
        settle()


def _basic_recover(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    channel.requeue_all()
    if method.NAME == "basic.recover":
        conn.send_method(channel.id, "basic.recover-ok")


def _confirm_select(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    if channel.transactional:
        raise Fault(406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
    channel.confirming = True
    conn.reply(channel, method, "confirm.select-ok")


def _tx(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    name = method.NAME
    if name == "tx.select":
        if channel.confirming:
            raise Fault(406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")
        channel.transactional = True
    elif not channel.transactional:
        raise Fault(406, "PRECONDITION_FAILED - channel is not transactional")
    else:
        work, channel.tx_work = channel.tx_work, []
        if name == "tx.commit":
            for step in work:
                step()
    conn.send_method(channel.id, f"{name}-ok")


def _channel_flow(conn: ServerConnection, channel: ServerChannel, method: Method) -> None:
    conn.send_method(channel.id, "channel.flow-ok", active=method.active)


_HANDLERS: dict[str, Callable[[ServerConnection, ServerChannel, Method], None]] = {
    "exchange.declare": _exchange_declare,
    "exchange.delete": _exchange_delete,
    "exchange.bind": _exchange_bind,
    "exchange.unbind": _exchange_bind,
    "queue.declare": _queue_declare,
    "queue.bind": _queue_bind,
    "queue.unbind": _queue_bind,
    "queue.purge": _queue_purge,
    "queue.delete": _queue_delete,
    "basic.qos": _basic_qos,
    "basic.consume": _basic_consume,
    "basic.cancel": _basic_cancel,
    "basic.get": _basic_get,
    "basic.ack": _basic_settle,
    "basic.nack": _basic_settle,
    "basic.reject": _basic_settle,
    "basic.recover": _basic_recover,
    "basic.recover-async": _basic_recover,
    "confirm.select": _confirm_select,
    "tx.select": _tx,
    "tx.commit": _tx,
    "tx.rollback": _tx,
    "channel.flow": _channel_flow,
}
