# -*- test-case-name: tests.test_testing -*-
"""
Test doubles for code that uses txamqp_next, without a broker or a socket.

L{AMQPump} is txAMQP's C{txamqp.testing.AMQPump}: a transport that records
the frames a client sends and pumps the frames a test chooses into it, so a
unit test plays the broker by hand::

    client = AMQFactory(clock=Clock()).buildProtocol(None)
    transport = AMQPump()
    transport.connect(client)
    channel = yield client.channel(1)
    d = channel.basic_consume(queue="jobs")
    transport.channel(1).basic_consume_ok(consumer_tag="tag")
    reply = yield d
    queue = yield client.queue("tag")
    transport.channel(1).deliver(b"hello", consumer_tag="tag", delivery_tag=1)
    message = yield queue.get()

It speaks to the client through the protocol core, so the client is held to
the protocol as with a broker.  Two things txAMQP's pump left to chance it
does itself, so that tests written for txAMQP keep working:

  - L{AMQPump.connect} plays the broker's part of the handshake (start,
    tune, open-ok; a client without credentials is logged in as guest) and
    then forgets those frames: C{outgoing} and C{incoming} start empty,
    with the client open;
  - a channel a test uses without C{channel_open()} is opened by the
    client first (txAMQP's pump let tests skip it; against a broker such a
    call ends the connection), and each C{channel.open} the client sends
    is answered with C{open-ok} at once.  A test that pumps
    C{channel_open_ok} itself is not answered twice: the pump drops an
    C{open-ok} it already sent, as it drops handshake methods pumped after
    C{connect}.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure

from txamqp_next import _frames
from txamqp_next._methods import Method, Properties
from txamqp_next._params import Credentials
from txamqp_next._txmessage import ClassInfo, MethodInfo

__all__ = ["AMQPump", "BodyPayload", "Frame", "HeaderPayload", "HeartbeatPayload", "MethodPayload"]

_HANDSHAKE = frozenset(
    {"connection.start", "connection.tune", "connection.open-ok", "connection.secure"}
)


class MethodPayload:
    """
    A method frame's payload, as txAMQP's C{connection.Method}.

    @ivar method: the method's L{MethodInfo} (C{.name}, C{.klass.name}).
    @ivar args: its field values in the spec's order.
    @ivar decoded: the method object.
    """

    type = "frame_method"

    def __init__(self, decoded: Method) -> None:
        self.decoded = decoded
        self.method = MethodInfo(decoded.SPEC)
        self.args = [
            default if name is None else getattr(decoded, name) for name, default in decoded._layout
        ]

    def __repr__(self) -> str:
        return f"Method({self.method!r}, {self.args!r})"


class HeaderPayload:
    """
    A content header frame's payload, as txAMQP's C{connection.Header}.
    """

    type = "frame_header"

    def __init__(self, klass: ClassInfo, weight: int, size: int, **properties: Any) -> None:
        self.klass = klass
        self.weight = weight
        self.size = size
        self.properties = properties

    def __repr__(self) -> str:
        return f"Header({self.klass!r}, {self.weight}, {self.size}, {self.properties!r})"


class BodyPayload:
    """
    A content body frame's payload, as txAMQP's C{connection.Body}.
    """

    type = "frame_body"

    def __init__(self, content: bytes) -> None:
        self.content = content

    def __repr__(self) -> str:
        return f"Body({self.content!r})"


class HeartbeatPayload:
    """
    A heartbeat frame's payload.
    """

    type = "frame_heartbeat"

    def __repr__(self) -> str:
        return "Heartbeat()"


class Frame:
    """
    A frame, as txAMQP's C{connection.Frame}: C{channel} and C{payload}.
    """

    def __init__(self, channel: int, payload: Any) -> None:
        self.channel = channel
        self.payload = payload

    def __repr__(self) -> str:
        return f"Frame({self.channel}, {self.payload!r})"


class AMQPump:
    """
    Track the frames a client sends and pump frames into it.  It is the
    client's transport.

    @ivar client: the client, once L{connect}ed.
    @ivar incoming: channel id to the L{Frame}s pumped into the client.
    @ivar outgoing: channel id to the L{Frame}s the client sent.
    @ivar initialized: whether the client sent its protocol header.
    @ivar connected: whether the transport is connected.
    @ivar aborted: whether the client aborted the connection.
    """

    disconnecting = False

    def __init__(self, logger: Any = None) -> None:
        """
        @param logger: a Twisted C{Logger} to log the frames to (at debug
            level), to see what a test does.
        """
        self.client: Any = None
        self.incoming: dict[int, list[Frame]] = {}
        self.outgoing: dict[int, list[Frame]] = {}
        self.initialized = False
        self.connected = False
        self.aborted = False
        self.logger = logger
        self._reader = _frames.FrameReader(0)
        # open-oks sent for the client's channel.open, per channel, that a
        # test may still pump itself
        self._auto_open_ok: dict[int, int] = {}
        self._handshaken = False

    # -- the transport ---------------------------------------------------------

    def connect(self, client: Any) -> None:
        """
        Connect C{client} (an L{AMQClient} or any L{AMQPConnection}) and
        take it through the handshake.
        """
        self._log("Client connected: {client}", client=client)
        self.connected = True
        self.client = client
        self.clock = client.clock
        if hasattr(client, "open_channels_on_use"):
            client.open_channels_on_use = True
        client.makeConnection(self)
        methods = client.core.methods
        self._feed(
            0,
            methods.make(
                "connection.start",
                (),
                {
                    "version_major": 0,
                    "version_minor": 9,
                    "server_properties": {"product": "AMQPump"},
                    "mechanisms": b"PLAIN AMQPLAIN EXTERNAL",
                    "locales": b"en_US",
                },
            ),
        )
        if client.core.credentials is None:
            client.login(Credentials())
        heartbeat = client.params.heartbeat or 0
        self._feed(
            0,
            methods.make(
                "connection.tune",
                (),
                {"channel_max": 2047, "frame_max": 131072, "heartbeat": heartbeat},
            ),
        )
        self._feed(0, methods.make("connection.open-ok"))
        self._handshaken = True
        self.incoming.clear()
        self.outgoing.clear()

    def write(self, data: bytes) -> None:
        """
        The client sent C{data}: record its frames in L{outgoing}.
        """
        if not self.initialized:
            # the protocol header
            self.initialized = True
            data = data[8:]
        self._reader.feed(data)
        while True:
            frame = self._reader.next_frame()
            if frame is _frames.NEED_DATA:
                return
            assert isinstance(frame, tuple)
            self._sent(*frame)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if not self.connected:
            return
        self.connected = False
        self.client.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]

    def abortConnection(self) -> None:
        if not self.connected:
            return
        self.connected = False
        self.aborted = True
        self.client.connectionLost(Failure(ConnectionLost()))  # type: ignore[no-untyped-call]

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        The pump never pushes back.
        """

    def unregisterProducer(self) -> None:
        pass

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 5672)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 49152)

    # -- pumping ---------------------------------------------------------------

    def channel(self, id: int) -> _AMQPServerChannel:
        """
        The broker's side of channel C{id}, to pump methods with:
        C{transport.channel(1).basic_consume_ok(consumer_tag="tag")}.
        """
        return _AMQPServerChannel(self, id)

    def pumpMethod(self, channel: int, klass: str, method: str, **fields: Any) -> None:
        """
        Pump a method frame.

        @param channel: the channel; methods of the C{connection} class go
            to channel 0 whatever the channel given, as a broker sends them.
        @param klass: the class name (C{"basic"}).
        @param method: the method name (C{"consume-ok"}).
        @param fields: its fields; the others take their defaults.
        """
        built = self.client.core.methods.make(f"{klass}.{method}", (), fields)
        if built.CONNECTION_CLASS:
            channel = 0
        self.pump(channel, MethodPayload(built))

    def pumpHeader(
        self, channel: int, klass: str, weight: int, size: int, **properties: Any
    ) -> None:
        """
        Pump a content header frame.
        """
        cspec = self.client.spec.class_by_name[klass]
        self.pump(
            channel, HeaderPayload(ClassInfo(cspec.name, cspec.id), weight, size, **properties)
        )

    def pumpBody(self, channel: int, body: bytes | str) -> None:
        """
        Pump a content body frame.
        """
        self.pump(channel, BodyPayload(body.encode("utf-8") if isinstance(body, str) else body))

    def pump(self, channel: int, payload: Any) -> None:
        """
        Pump one frame.
        """
        if isinstance(payload, MethodPayload):
            name = payload.decoded.NAME
            if self._handshaken and name in _HANDSHAKE:
                self._log("Dropped {name}: the handshake is done", name=name)
                return
            if name == "channel.open-ok" and self._auto_open_ok.get(channel):
                self._auto_open_ok[channel] -= 1
                self._log("Dropped channel.open-ok on {channel}: answered", channel=channel)
                return
        frame = Frame(channel, payload)
        self._log("Incoming frame: {frame}", frame=frame)
        self.incoming.setdefault(channel, []).append(frame)
        self.client.dataReceived(self._encode(channel, payload))

    # -- internals -------------------------------------------------------------

    def _feed(self, channel: int, method: Method) -> None:
        self.client.dataReceived(_frames.method_frame(channel, method.encode()))

    def _encode(self, channel: int, payload: Any) -> bytes:
        if isinstance(payload, MethodPayload):
            return _frames.method_frame(channel, payload.decoded.encode())
        methods = self.client.core.methods
        if isinstance(payload, HeaderPayload):
            properties: Properties = methods.properties_from(payload.klass.id, payload.properties)
            header = properties.encode_header(payload.size)
            return _frames.frame(_frames.FRAME_HEADER, channel, header)
        if isinstance(payload, BodyPayload):
            return _frames.frame(_frames.FRAME_BODY, channel, payload.content)
        if isinstance(payload, HeartbeatPayload):
            return _frames.HEARTBEAT
        raise TypeError(f"cannot pump {payload!r}")

    def _sent(self, frame_type: int, channel: int, payload: bytes) -> None:
        methods = self.client.core.methods
        item: Any
        if frame_type == _frames.FRAME_METHOD:
            item = MethodPayload(methods.decode(payload))
        elif frame_type == _frames.FRAME_HEADER:
            class_id, size, properties = methods.decode_header(payload)
            cspec = self.client.spec.class_by_id[class_id]
            present = {n: v for n, v in properties.items() if v is not None}
            item = HeaderPayload(ClassInfo(cspec.name, class_id), 0, size, **present)
        elif frame_type == _frames.FRAME_BODY:
            item = BodyPayload(payload)
        else:
            item = HeartbeatPayload()
        if not self._handshaken:
            return
        frame = Frame(channel, item)
        self._log("Outgoing frame: {frame}", frame=frame)
        self.outgoing.setdefault(channel, []).append(frame)
        if isinstance(item, MethodPayload) and item.decoded.NAME == "channel.open":
            self._auto_open_ok[channel] = self._auto_open_ok.get(channel, 0) + 1
            self._feed(channel, methods.make("channel.open-ok"))

    def _log(self, message: str, **params: Any) -> None:
        if self.logger is not None:
            self.logger.debug(message, **params)


class _AMQPServerChannel:
    """
    The broker's side of one channel: C{basic_consume_ok(consumer_tag=...)}
    pumps a C{basic.consume-ok}, L{deliver} a whole delivery.
    """

    def __init__(self, pump: AMQPump, id: int) -> None:
        self.pump = pump
        self.id = id

    def deliver(self, body: bytes | str, **fields: Any) -> None:
        """
        Pump a C{basic.deliver} with its header and body.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.pump.pumpMethod(self.id, "basic", "deliver", **fields)
        self.pump.pumpHeader(self.id, "basic", 0, len(data))
        self.pump.pumpBody(self.id, data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        klass, _, method = name.partition("_")
        # basic_return_ is basic.return
        return partial(self.pump.pumpMethod, self.id, klass, method.rstrip("_").replace("_", "-"))
