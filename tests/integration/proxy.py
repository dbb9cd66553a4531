"""
A loopback TCP proxy, written with Twisted, that sits between a client and
the broker and can freeze, delay or cut the traffic, for heartbeat and fault
tests.

    proxy = Proxy(reactor)
    await proxy.start()
    client = await txamqp_next.connect(reactor, proxy.url, heartbeat=1)
    proxy.freeze()      # nothing passes either way; bytes wait in the proxy
    proxy.freeze_links()  # the same, for good, on the connections open now
    proxy.thaw()        # what waited goes on, in order
    proxy.delay = 0.3   # every chunk is held back 0.3 s on its way
    proxy.cut()         # both sockets are dropped

What passes is recorded per direction (C{to_broker}, C{to_client}), and
L{frame_types} reads the AMQP frame types out of such a record.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IDelayedCall

from tests.integration.broker import BROKER
from txamqp_next.endpoint import parse_url

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def frame_types(data: bytes | bytearray, since: int = 0) -> list[int]:
    """
    The type of every whole frame in a recorded stream (1 method, 2 header,
    3 body, 8 heartbeat) that starts at or after offset C{since}; the
    protocol header that opens a client's stream is skipped.
    """
    offset = len(AMQP_HEADER) if data.startswith(AMQP_HEADER) else 0
    types = []
    while offset + 7 <= len(data):
        kind, _, size = struct.unpack_from(">BHI", data, offset)
        if offset + 8 + size > len(data):
            break
        if offset >= since:
            types.append(kind)
        offset += 8 + size
    return types


class _Pipe:
    """
    One direction of one proxied connection: bytes wait here while the
    proxy is frozen or delaying, and leave in order.
    """

    def __init__(self, proxy: Proxy, record: bytearray) -> None:
        self.proxy = proxy
        self.record = record
        self.destination: Any = None
        self.queue: deque[tuple[float, bytes]] = deque()
        self.timer: IDelayedCall | None = None
        self.frozen = False
        self.stopped = False

    def push(self, data: bytes) -> None:
        if self.stopped:
            # bytes from the broker's side after the client's side closed
            return
        self.queue.append((self.proxy.reactor.seconds() + self.proxy.delay, data))
        self.pump()

    def pump(self) -> None:
        if self.proxy.frozen or self.frozen or self.stopped or self.destination is None:
            return
        now = self.proxy.reactor.seconds()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            self.record += data
            self.destination.write(data)
        if self.queue and self.timer is None:
            self.timer = self.proxy.reactor.callLater(self.queue[0][0] - now, self._wake)

    def _wake(self) -> None:
        self.timer = None
        self.pump()

    def stop(self) -> None:
        """
        The connection closed: drop what waits, and never wake again.
        """
        self.stopped = True
        self.queue.clear()
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


class _BrokerSide(protocol.Protocol):
    def __init__(self, link: _ClientSide) -> None:
        self.link = link

    def connectionMade(self) -> None:
        self.link.broker_connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.link.to_client.push(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.link.broker_lost()


class _ClientSide(protocol.Protocol):
    """
    The proxy's end of the client's connection; it opens one to the broker.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.to_broker = _Pipe(proxy, proxy.to_broker)
        self.to_client = _Pipe(proxy, proxy.to_client)
        self.broker: _BrokerSide | None = None

    def connectionMade(self) -> None:
        self.proxy.links.append(self)
        self.to_client.destination = self.transport
        host, port = self.proxy.target
        creator = protocol.ClientCreator(self.proxy.reactor, _BrokerSide, self)
        d = creator.connectTCP(host, port)
        d.addErrback(lambda _: self.transport.abortConnection())  # type: ignore[union-attr]

    def broker_connected(self, broker: _BrokerSide) -> None:
        self.broker = broker
        self.to_broker.destination = broker.transport
        self.to_broker.pump()

    def dataReceived(self, data: bytes) -> None:
        self.to_broker.push(data)

    def broker_lost(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.to_broker.stop()
        self.to_client.stop()
        if self in self.proxy.links:
            self.proxy.links.remove(self)
        if self.broker is not None and self.broker.transport is not None:
            self.broker.transport.loseConnection()

    def abort(self) -> None:
        for side in (self, self.broker):
            if side is not None and side.transport is not None:
                side.transport.abortConnection()  # type: ignore[attr-defined]


class Proxy(protocol.ServerFactory):
    """
    A TCP proxy on a spare 127.0.0.1 port forwarding to the broker.

    @ivar frozen: while true nothing is forwarded either way.
    @ivar delay: seconds each chunk is held back on its way.
    @ivar to_broker: every byte forwarded from clients to the broker.
    @ivar to_client: every byte forwarded from the broker to clients.
    """

    def __init__(self, reactor: Any, target: str = BROKER) -> None:
        self.reactor = reactor
        params = parse_url(target)
        self.target = (params.host, params.port)
        self.frozen = False
        self.delay = 0.0
        self.to_broker = bytearray()
        self.to_client = bytearray()
        self.links: list[_ClientSide] = []
        self.port: Any = None

    def buildProtocol(self, addr: Any) -> _ClientSide:
        return _ClientSide(self)

    def start(self) -> defer.Deferred[None]:
        """
        Listen; the test should C{addCleanup(proxy.stop)}.
        """
        self.port = self.reactor.listenTCP(0, self, interface="127.0.0.1")
        return defer.succeed(None)

    @property
    def url(self) -> str:
        """
        An AMQP URI that reaches the broker through the proxy.
        """
        return f"amqp://guest:guest@127.0.0.1:{self.port.getHost().port}/"

    def freeze(self) -> None:
        """
        Stop forwarding; received bytes wait in the proxy.
        """
        self.frozen = True

    def freeze_links(self) -> None:
        """
        Stop forwarding on the connections open now, for good (a peer that
        hangs); new connections pass.
        """
        for link in self.links:
            link.to_broker.frozen = link.to_client.frozen = True

    def thaw(self) -> None:
        """
        Forward again, what waited first.
        """
        self.frozen = False
        for link in list(self.links):
            link.to_broker.pump()
            link.to_client.pump()

    def cut(self) -> None:
        """
        Drop every proxied connection at once, both sides.
        """
        for link in list(self.links):
            link.abort()

    def stop(self) -> defer.Deferred[None]:
        """
        Cut everything and stop listening.
        """
        self.cut()
        d: defer.Deferred[None] = defer.maybeDeferred(self.port.stopListening)
        return d
