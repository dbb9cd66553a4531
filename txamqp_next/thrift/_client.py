# -*- test-case-name: tests.test_thrift -*-
"""
The client side of Thrift over AMQP: a L{ThriftClient} carries the calls of
a Thrift-generated Twisted client (C{thrift --gen py:twisted}) over one
channel.

Each call is one AMQP message published to the service's exchange with the
service name as routing key, C{mandatory}, its C{reply_to} naming the
client's exclusive reply queue and a C{thriftClientName} header; the body is
the Thrift message exactly as the protocol wrote it.  Replies come back on
the reply queue and are matched to calls by their Thrift sequence id.  This
is txAMQP's wire format, so the servers of both libraries answer both
libraries' clients.
"""

from __future__ import annotations

import functools
import struct
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeAlias, TypeVar

from thrift.protocol.TBinaryProtocol import (
    TBinaryProtocol,
    TBinaryProtocolAccelerated,
    TBinaryProtocolAcceleratedFactory,
)
from thrift.Thrift import TMessageType
from thrift.transport.TTransport import TMemoryBuffer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txamqp_next._deferred import adopt, from_coroutine, may_fail, succeed
from txamqp_next.channel import Channel, Consumer
from txamqp_next.confirms import PublishNacked, Unroutable
from txamqp_next.connection import AMQPConnection
from txamqp_next.errors import Closed
from txamqp_next.message import Message
from txamqp_next.recovery import RecoveringChannel, RecoveringConnection, RecoveringConsumer
from txamqp_next.thrift._errors import (
    CallTimeout,
    ServiceUnavailable,
    ThriftTransportError,
    TransportClosed,
)

__all__ = [
    "DEFAULT_EXCHANGE",
    "DEFAULT_RESPONSES_EXCHANGE",
    "AMQPClientTransport",
    "ThriftClient",
    "close_client",
    "connect_client",
    "declare_exchange",
    "open_client",
    "set_up_channel",
]

ClientT = TypeVar("ClientT")

#: what Thrift clients and servers run on: a connection (they open a
#: channel of their own) or a channel to share, recovering or not
Amqp: TypeAlias = "AMQPConnection | Channel | RecoveringConnection | RecoveringChannel"
#: the channels they use
AnyChannel: TypeAlias = "Channel | RecoveringChannel"

#: seconds the reply queue of a client on a recovering connection outlives
#: the client's last connection (its replies wait there meanwhile)
REPLY_QUEUE_EXPIRES = 300.0

DEFAULT_EXCHANGE = "thrift"
"""
The exchange services are reached through unless told otherwise (a direct
exchange, declared when missing).
"""

DEFAULT_RESPONSES_EXCHANGE = "amq.direct"
"""
The exchange replies are published to unless told otherwise: the broker's
predeclared direct exchange.
"""


_TWO_I32 = struct.Struct(">ii")
_I32 = struct.Struct(">i")
# the strict binary header's version word, as Thrift's TBinaryProtocol
# reads it (a signed 32-bit integer)
_VERSION_MASK = TBinaryProtocol.VERSION_MASK
_VERSION_1 = TBinaryProtocol.VERSION_1


class _BinaryProtocol(TBinaryProtocolAccelerated):  # type: ignore[misc]
    """
    Thrift's C{TBinaryProtocolAccelerated}, with the message header (the
    part its C codec leaves to Python, four times a call) read and written
    in one step:

      - C{writeMessageBegin} writes a strict header as one string, with
        C{struct}, where Thrift's makes three writes through five calls;
      - C{readMessageBegin} gives the header L{reading_protocol} read from
        the message's bytes, without reading it again from the transport.

    Anything else (a non-strict header, a name that is not a C{str} or not
    encodable, a protocol no header was read for) is left to Thrift.
    """

    #: the header L{reading_protocol} read, for C{readMessageBegin}
    _header: tuple[str, int, int] | None = None

    def readMessageBegin(self) -> tuple[str, int, int]:
        header = self._header
        if header is None:
            return super().readMessageBegin()  # type: ignore[no-any-return]
        self._header = None
        return header

    def writeMessageBegin(self, name: Any, type: int, seqid: int) -> None:
        if self.strictWrite and name.__class__ is str:
            try:
                encoded = name.encode("utf-8")
            except UnicodeEncodeError:
                pass
            else:
                self.trans.write(
                    _TWO_I32.pack(_VERSION_1 | type, len(encoded)) + encoded + _I32.pack(seqid)
                )
                return
        super().writeMessageBegin(name, type, seqid)


class _BinaryProtocolFactory(TBinaryProtocolAcceleratedFactory):  # type: ignore[misc]
    """
    Thrift's C{TBinaryProtocolAcceleratedFactory}, making its protocols
    faster: a call builds four or five protocols (one per message read or
    written, on each side), and Thrift's constructor, which imports the C
    codec every time, was some 5% of a call's CPU.  The first protocol is
    built by Thrift's constructor; later ones get the same attributes (the
    factory's limits, the codec) copied from it, with their own transport.
    Changing the factory's attributes is seen by the next protocol.  The
    protocols are L{_BinaryProtocol}s.
    """

    _template: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def getProtocol(self, trans: Any) -> _BinaryProtocol:
        settings = (self.string_length_limit, self.container_length_limit, self._fallback)
        template = self._template
        if template is None or template[0] != settings:
            model = super().getProtocol(None)
            template = self._template = (settings, vars(model))
        protocol = _BinaryProtocol.__new__(_BinaryProtocol)
        protocol.__dict__.update(template[1])
        protocol.trans = trans
        return protocol


def binary_protocol() -> TBinaryProtocolAcceleratedFactory:
    """
    The Thrift protocol clients and servers use unless told otherwise:
    Thrift's binary protocol, the one txAMQP uses, with its C codec
    (C{thrift.protocol.fastbinary}) for the calls' arguments and results
    where Thrift was built with it, and Thrift's Python codec where not.
    Both put the same bytes on the wire.
    """
    return _BinaryProtocolFactory()


def declare_exchange(channel: AnyChannel, exchange: str) -> Deferred[Any]:
    """
    Declare a direct exchange as txAMQP's Thrift code does (not durable, not
    auto-deleted), unless it is the default exchange or one of the broker's
    own C{amq.*} exchanges, which exist already and may not be declared.

    @return: a L{Deferred} firing once the exchange exists, or failing with
        the channel's error (L{txamqp_next.errors.PreconditionFailed} when
        it exists with other settings).
    """
    if not exchange or exchange.startswith("amq."):
        return succeed(None)
    return channel.exchange_declare(exchange=exchange, type="direct")


@asynccontextmanager
async def set_up_channel(amqp: Amqp) -> AsyncIterator[tuple[AnyChannel, bool]]:
    """
    The channel a client or server is set up on: C{amqp} itself when it is
    a channel, else a new channel of the connection, which is closed
    again if the set-up fails::

        async with set_up_channel(amqp) as (channel, owns):
            ...

    @return: an async context manager giving the channel and whether it was
        opened here (and is so the client's or server's to close).
    """
    channel: AnyChannel
    if isinstance(amqp, (AMQPConnection, RecoveringConnection)):
        channel = await amqp.open_channel()
        owns = True
    else:
        channel, owns = amqp, False
    try:
        yield channel, owns
    except BaseException:
        if owns and channel.closed is None:
            channel.close()
        raise


def _strict_header(body: bytes, factory: Any) -> tuple[str, int, int, int] | None:
    """
    With L{binary_protocol}'s factory, the C{(name, message type, seqid,
    size)} of the strict binary header C{body} starts with, read straight
    from the bytes: what Thrift's C{readMessageBegin} reads, as it reads
    it (the name within the factory's string length limit and UTF-8).

    @return: C{None} for another factory or anything else (a non-strict
        header, a name Thrift would refuse, too few bytes), for the
        factory's protocol to read with its own result or error.
    """
    if type(factory) is _BinaryProtocolFactory and len(body) >= 12:
        head, size = _TWO_I32.unpack_from(body)
        end = 8 + size
        if (
            head & _VERSION_MASK == _VERSION_1
            and 0 <= size <= len(body) - 12
            and (factory.string_length_limit is None or size <= factory.string_length_limit)
        ):
            try:
                name = body[8:end].decode("utf-8")
            except UnicodeDecodeError:
                return None
            return name, head & 0xFF, _I32.unpack_from(body, end)[0], end + 4
    return None


def read_header(body: bytes, factory: Any) -> tuple[str, int, int]:
    """
    The C{(name, message type, seqid)} of a Thrift message.

    With L{binary_protocol}'s factory a strict header (the one Thrift's
    binary protocol writes) is read straight from the bytes; anything else
    goes through the factory's protocol, which gives the same result or
    error.

    @raise ThriftTransportError: C{body} does not start with a Thrift
        message header in C{factory}'s protocol.
    """
    header = _strict_header(body, factory)
    if header is not None:
        return header[:3]
    try:
        name, mtype, seqid = factory.getProtocol(TMemoryBuffer(body)).readMessageBegin()
    except Exception as e:
        raise ThriftTransportError(
            f"not a Thrift message ({len(body)} bytes): {type(e).__name__}: {e}", e
        ) from None
    return str(name), int(mtype), int(seqid)


def reading_protocol(factory: Any, body: bytes) -> Any:
    """
    A protocol of C{factory} reading the Thrift message C{body}.  With
    L{binary_protocol}'s factory a strict header is read straight from the
    bytes (as L{read_header} reads it), and the protocol's
    C{readMessageBegin} gives it without reading it again; the rest is read
    from the transport as usual.
    """
    trans = TMemoryBuffer(body)
    protocol = factory.getProtocol(trans)
    if type(protocol) is _BinaryProtocol:
        header = _strict_header(body, factory)
        if header is not None:
            trans.read(header[3])
            protocol._header = header[:3]
    return protocol


class AMQPClientTransport:
    """
    The Thrift transport a generated client writes its calls to: the bytes
    of each message are gathered until C{flush}, then sent by the
    L{ThriftClient} as one AMQP message.  It cannot be read from; replies
    reach the client through its reply queue.

    @ivar client: the L{ThriftClient}.
    """

    def __init__(self, client: ThriftClient[Any]) -> None:
        self.client = client
        self._buffer: list[bytes] = []

    def isOpen(self) -> bool:
        return self.client.closed is None

    def open(self) -> None:
        """
        Nothing to do: the client is open once made.
        """

    def close(self) -> Deferred[None]:
        return self.client.close()

    def read(self, sz: int) -> bytes:
        raise ThriftTransportError("the AMQP client transport cannot be read from")

    def write(self, buf: bytes) -> None:
        self._buffer.append(buf)

    def flush(self) -> None:
        message = b"".join(self._buffer)
        self._buffer.clear()
        self.client.send(message)


def _adopt_calls(stub: object) -> None:
    """
    Make the calls of a generated client return L{Deferred}s that asyncio
    tasks can await too (see L{txamqp_next._deferred}): each method that
    has a C{send_} twin (a call of the service) is wrapped on the instance.
    """
    cls = type(stub)
    for name in dir(cls):
        if name.startswith("_") or not callable(getattr(cls, f"send_{name}", None)):
            continue
        setattr(stub, name, _adopting(getattr(stub, name)))


def _adopting(call: Callable[..., Deferred[Any]]) -> Callable[..., Deferred[Any]]:
    @functools.wraps(call)
    def adopted(*args: Any, **kwargs: Any) -> Deferred[Any]:
        return adopt(call(*args, **kwargs))

    return adopted


class _Call:
    """
    A call waiting for its reply.

    @ivar deadline: when it times out (the clock's seconds), or C{None}.
    @ivar timeout: the client's timeout when it was sent.
    @ivar held: for a call made while a recovering connection was down,
        its message and the time until which it is sent again when the
        broker returns it (no server bound yet: the servers may be
        recovering too).
    """

    __slots__ = ("deadline", "held", "method", "timeout")

    def __init__(
        self,
        method: str,
        timeout: float | None,
        deadline: float | None,
        held: tuple[bytes, float] | None = None,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.deadline = deadline
        self.held = held


#: seconds between the publishes of a held call the broker returned
RESEND_DELAY = 0.5


class _ReturnRouter:
    """
    The return handler of a channel Thrift clients or servers use.  A
    returned call goes to the L{ThriftClient} whose reply queue it names; a
    returned reply (published by a server to its responses exchange, its
    client gone) is logged and dropped; other returns are left to the
    channel's other return handlers.

    @ivar clients: reply queue to L{ThriftClient}.
    @ivar reply_exchanges: the responses exchanges of the servers.
    """

    log = Logger()

    def __init__(self, channel: AnyChannel) -> None:
        self.channel = channel
        self.clients: dict[str, ThriftClient[Any]] = {}
        self.reply_exchanges: set[str] = set()
        channel.add_return_handler(self)

    def __call__(self, message: Message) -> None:
        client = self.clients.get(getattr(message.properties, "reply_to", None) or "")
        if client is not None:
            client._returned(message)
        elif message.exchange in self.reply_exchanges:
            self.log.warn(
                "the reply to {reply_to} was returned: its client has gone",
                reply_to=message.routing_key,
            )
        else:
            self.log.info(
                "returned message for no Thrift client: {exchange} {routing_key}",
                exchange=message.exchange,
                routing_key=message.routing_key,
            )


_routers: weakref.WeakKeyDictionary[AnyChannel, _ReturnRouter] = weakref.WeakKeyDictionary()


def return_router(channel: AnyChannel) -> _ReturnRouter:
    """
    The channel's L{_ReturnRouter}, made on first use.
    """
    router = _routers.get(channel)
    if router is None:
        router = _routers[channel] = _ReturnRouter(channel)
    return router


class ThriftClient(Generic[ClientT]):
    """
    One Thrift client over one AMQP channel.  Make one with L{open_client}
    (or L{connect_client}, which gives its L{stub}).

    Every call of the stub fires with the method's result or fails with:
    the method's declared exception; C{TApplicationException} (the server's
    handler raised something undeclared, or the method is unknown there);
    L{CallTimeout} when no reply came within C{timeout} seconds;
    L{ServiceUnavailable} when no server queue is bound to the service;
    L{TransportClosed} when the channel or connection closed first, or the
    client was closed (its C{reason} is the AMQP error).  No call waits
    forever unless C{timeout} is C{None}.

    @ivar stub: the generated client, whose methods make calls.
    @ivar channel: the L{Channel} the calls go through.
    @ivar service_name: the routing key of the calls.
    @ivar exchange: the exchange the calls are published to.
    @ivar reply_queue: the queue replies arrive on (the C{reply_to} of
        every call).
    @ivar client_name: the C{thriftClientName} header of every call.
    @ivar timeout: seconds a call waits for its reply, or C{None}.
    @ivar closed: the error later calls fail with once closed, else C{None}.
    """

    log = Logger()

    def __init__(
        self,
        channel: AnyChannel,
        service_name: str,
        client_class: Callable[[Any, Any], ClientT],
        reply_queue: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        timeout: float | None = 30.0,
        iprot_factory: Any = None,
        oprot_factory: Any = None,
        client_name: str | None = None,
        clock: IReactorTime | None = None,
        owns_channel: bool = False,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive or None, not {timeout!r}")
        self.channel = channel
        self.service_name = service_name
        self.exchange = exchange
        self.reply_queue = reply_queue
        self.timeout = timeout
        self.client_name = client_name or getattr(client_class, "__name__", "") + service_name
        self.closed: BaseException | None = None
        self._clock = clock if clock is not None else channel.connection.clock
        self._iprot_factory = iprot_factory or binary_protocol()
        self._oprot_factory = oprot_factory or self._iprot_factory
        self._owns_channel = owns_channel
        #: the calls waiting, in the order they were sent
        self._calls: dict[int, _Call] = {}
        #: the one timer of the calls' deadlines (see L{_watch}), when armed
        self._timer: IDelayedCall | None = None
        #: the latest deadline given, and whether the calls' deadlines are
        #: in the order of C{_calls} (not so once C{timeout} was lowered
        #: while calls waited)
        self._last_deadline = 0.0
        self._in_order = True
        #: whether calls are being timed out (the timer is armed after)
        self._timing_out = False
        self._consumer: Consumer | RecoveringConsumer | None = None
        self._sending = False
        self._send_error: BaseException | None = None
        self._properties = channel.methods.properties[60](
            reply_to=reply_queue, headers={"thriftClientName": self.client_name}
        )
        self.transport = AMQPClientTransport(self)
        self.stub: ClientT = client_class(self.transport, self._oprot_factory)
        _adopt_calls(self.stub)

    def __repr__(self) -> str:
        return (
            f"<ThriftClient {self.client_name!r} to {self.exchange!r}/{self.service_name!r} "
            f"replies on {self.reply_queue!r}{' closed' if self.closed else ''}>"
        )

    @property
    def _reqs(self) -> dict[int, Deferred[Any]]:
        # the generated client's Deferreds of calls waiting for a reply
        reqs: dict[int, Deferred[Any]] = getattr(self.stub, "_reqs", {})
        return reqs

    @property
    def pending(self) -> int:
        """
        How many calls wait for their reply.
        """
        return len(self._calls)

    def start(self) -> Deferred[ThriftClient[ClientT]]:
        """
        Consume the reply queue and watch for returned calls.

        @return: a L{Deferred} firing with this client once replies can
            arrive, or failing with the channel's error.
        """
        return_router(self.channel).clients[self.reply_queue] = self
        consuming = self.channel.basic_consume(
            queue=self.reply_queue, no_ack=True, callback=self._reply
        )

        def started(consumer: Consumer | RecoveringConsumer) -> ThriftClient[ClientT]:
            self._consumer = consumer
            consumer.when_ended().addCallback(self._consumer_ended)
            return self

        return consuming.addCallback(started)

    # -- calls -----------------------------------------------------------------

    def send(self, message: bytes) -> None:
        """
        Publish one Thrift call (the generated client calls this through
        the transport's C{flush}).

        @raise TransportClosed: the client is closed, or the channel is.
        @raise ThriftTransportError: C{message} is not a Thrift message, or
            the channel refused it at once.
        """
        if self.closed is not None:
            raise TransportClosed(f"{self!r} is closed: {self.closed}", self.closed)
        if self.channel.closed is not None:
            raise TransportClosed(
                f"the channel of {self!r} is closed: {self.channel.closed}", self.channel.closed
            )
        method, mtype, seqid = read_header(message, self._oprot_factory)
        if mtype != TMessageType.ONEWAY:
            now = self._clock.seconds()
            timeout = self.timeout
            deadline = None if timeout is None else now + timeout
            held = None
            if isinstance(self.channel, RecoveringChannel) and not self.channel.is_open:
                held = (message, now + (timeout or 60.0))
            calls = self._calls
            if seqid in calls:
                # a sequence id used again: the call goes to the end
                self._forget(seqid)
            calls[seqid] = _Call(method, timeout, deadline, held)
            if deadline is not None:
                self._watch(deadline, now)
        self._sending = True
        try:
            self._publish(message, seqid, method)
        finally:
            self._sending = False
        error, self._send_error = self._send_error, None
        if error is not None:
            self._forget(seqid)
            raise error

    def _publish(self, message: bytes, seqid: int, method: str) -> None:
        published = self.channel.basic_publish(
            exchange=self.exchange,
            routing_key=self.service_name,
            body=message,
            properties=self._properties,
            mandatory=True,
        )
        if may_fail(published):
            # in confirm mode, or refused: a publish handed to the transport
            # (the usual case) has nothing left to report
            published.addErrback(self._publish_failed, seqid, method)

    def _send_again(self, seqid: int) -> bool:
        """
        A call the broker returned: when it was made while the connection
        was down, publish it again a little later (until its deadline),
        since the servers may not have served again yet.

        @return: whether it will be sent again.
        """
        call = self._calls.get(seqid)
        if call is None or call.held is None or self.closed is not None:
            return False
        deadline = call.held[1]
        if self._clock.seconds() + RESEND_DELAY >= deadline:
            return False
        self._clock.callLater(RESEND_DELAY, self._resend, seqid)
        return True

    def _resend(self, seqid: int) -> None:
        call = self._calls.get(seqid)
        if call is None or call.held is None or self.closed is not None:
            return
        self._publish(call.held[0], seqid, call.method)

    def _publish_failed(self, failure: Failure, seqid: int, method: str) -> None:
        reason = failure.value
        error: BaseException
        if isinstance(reason, Unroutable) and not self._sending and self._send_again(seqid):
            return
        if isinstance(reason, Unroutable):
            returned = reason.message
            error = ServiceUnavailable(
                self.exchange,
                self.service_name,
                method,
                f"{returned.reply_code} {returned.reply_text}",
            )
        elif isinstance(reason, PublishNacked):
            error = ThriftTransportError(f"the broker refused call {method}: {reason}", reason)
        elif isinstance(reason, Closed):
            error = TransportClosed(f"call {method} could not be published: {reason}", reason)
        else:
            error = ThriftTransportError(f"call {method} could not be published: {reason}", reason)
        if self._sending:
            self._send_error = error
        else:
            self._fail(seqid, error)

    def _forget(self, seqid: int) -> _Call | None:
        call = self._calls.pop(seqid, None)
        if not self._calls:
            # no call waits: no timer either
            self._in_order = True
            self._last_deadline = 0.0
            timer, self._timer = self._timer, None
            if timer is not None and timer.active():
                timer.cancel()
        return call

    # -- deadlines ---------------------------------------------------------------
    #
    # One timer for all of a client's calls rather than one per call: it is
    # armed for the earliest deadline of the calls waiting.  With a timeout
    # that does not change, deadlines come in the order calls are sent, the
    # order of C{_calls}, so the earliest is the first call's that has one.

    def _watch(self, deadline: float, now: float) -> None:
        """
        A call was sent at C{now} with C{deadline}: arm the timer for it
        unless it is armed for an earlier time.
        """
        if deadline < self._last_deadline:
            self._in_order = False
        self._last_deadline = deadline
        if self._timing_out:
            return
        timer = self._timer
        if timer is None:
            self._arm(deadline, now)
        elif deadline < timer.getTime():
            timer.cancel()
            self._arm(deadline, now)

    def _arm(self, deadline: float, now: float) -> None:
        self._timer = self._clock.callLater(max(0.0, deadline - now), self._deadlines_reached)

    def _deadlines_reached(self) -> None:
        """
        The timer fired: time out every call whose deadline has come, then
        arm the timer for the earliest deadline left.
        """
        self._timer = None
        now = self._clock.seconds()
        due = []
        for seqid, call in self._calls.items():
            deadline = call.deadline
            if deadline is None:
                continue
            if deadline <= now:
                due.append(seqid)
            elif self._in_order:
                break
        # the callbacks of the calls timed out may send others: the timer is
        # armed once they are all done, for the earliest deadline of all
        self._timing_out = True
        try:
            for seqid in due:
                self._timed_out(seqid)
        finally:
            self._timing_out = False
        if self._calls and self.closed is None:
            earliest = None
            for call in self._calls.values():
                deadline = call.deadline
                if deadline is not None and (earliest is None or deadline < earliest):
                    earliest = deadline
                    if self._in_order:
                        break
            if earliest is not None:
                self._arm(earliest, self._clock.seconds())

    def _fail(self, seqid: int, error: BaseException) -> None:
        self._forget(seqid)
        d = self._reqs.pop(seqid, None)
        if d is not None and not d.called:
            d.errback(error)

    def _timed_out(self, seqid: int) -> None:
        call = self._calls.get(seqid)
        if call is None:
            # answered or failed by the callback of another call timed out
            return
        timeout = call.timeout
        assert timeout is not None, "a call without a timeout timed out"
        self.log.warn(
            "no reply to {method} (seqid {seqid}) from {service} within {timeout}s",
            method=call.method,
            seqid=seqid,
            service=self.service_name,
            timeout=timeout,
        )
        self._fail(seqid, CallTimeout(self.service_name, call.method, seqid, timeout))

    # -- replies -----------------------------------------------------------------

    def _reply(self, message: Message) -> None:
        try:
            iprot = reading_protocol(self._iprot_factory, message.body)
            method, mtype, seqid = iprot.readMessageBegin()
        except Exception as e:
            self.log.warn(
                "dropping a {size}-byte reply on {queue} that is not a Thrift message: {error}",
                size=len(message.body),
                queue=self.reply_queue,
                error=e,
            )
            return
        call = self._forget(seqid)
        d = self._reqs.get(seqid)
        if d is None or d.called:
            self.log.info(
                "dropping reply {method} (seqid {seqid}): no call waits for it",
                method=method,
                seqid=seqid,
            )
            return
        recv = getattr(self.stub, f"recv_{method}", None)
        if recv is None or (call is not None and call.method != method):
            self._fail(
                seqid,
                ThriftTransportError(
                    f"reply to {call.method if call else '?'} (seqid {seqid}) "
                    f"names method {method!r}"
                ),
            )
            return
        try:
            recv(iprot, mtype, seqid)
        except Exception as e:
            self._reqs.pop(seqid, None)
            if not d.called:
                d.errback(ThriftTransportError(f"malformed reply to {method}: {e}", e))

    def _returned(self, message: Message) -> None:
        try:
            method, _, seqid = read_header(message.body, self._oprot_factory)
        except ThriftTransportError:
            return
        if self._send_again(seqid):
            return
        self._fail(
            seqid,
            ServiceUnavailable(
                message.exchange,
                message.routing_key,
                method,
                f"{message.reply_code} {message.reply_text}",
            ),
        )

    # -- closing -----------------------------------------------------------------

    def _consumer_ended(self, reason: BaseException) -> None:
        self._shutdown(TransportClosed(f"the reply consumer of {self!r} ended: {reason}", reason))

    def _shutdown(self, error: BaseException) -> None:
        if self.closed is not None:
            return
        self.closed = error
        router = _routers.get(self.channel)
        if router is not None and router.clients.get(self.reply_queue) is self:
            del router.clients[self.reply_queue]
        for seqid in list(self._calls):
            self._forget(seqid)
        reqs = self._reqs
        while reqs:
            _, d = reqs.popitem()
            if not d.called:
                d.errback(error)

    def close(self) -> Deferred[None]:
        """
        Close the client: calls waiting fail with L{TransportClosed}, the
        reply consumer is cancelled and, when the client opened its
        channel itself, the channel is closed.

        @return: a L{Deferred} firing with C{None} once done.  It does not
            fail.
        """
        was_closed = self.closed is not None
        self._shutdown(TransportClosed(f"{self!r} was closed"))
        if was_closed and (not self._owns_channel or self.channel.closed is not None):
            return succeed(None)
        return from_coroutine(self._close())

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None and consumer.cancelled is None:
                await consumer.cancel()
            if self._owns_channel:
                await self.channel.close()
        except Exception as e:
            self.log.info("closing {client}: {error}", client=self, error=e)


def open_client(
    amqp: Amqp,
    service_name: str,
    client_class: Callable[[Any, Any], ClientT],
    *,
    exchange: str = DEFAULT_EXCHANGE,
    responses_exchange: str = DEFAULT_RESPONSES_EXCHANGE,
    reply_queue: str | None = None,
    timeout: float | None = 30.0,
    protocol_factory: Any = None,
    iprot_factory: Any = None,
    oprot_factory: Any = None,
    declare: bool = True,
    client_name: str | None = None,
) -> Deferred[ThriftClient[ClientT]]:
    """
    Make a L{ThriftClient} for a service.

    @param amqp: an open L{AMQPConnection} or L{RecoveringConnection} (the
        client then opens a channel of its own and closes it with
        L{ThriftClient.close}) or an open L{Channel} or L{RecoveringChannel}
        to share.  On a recovering connection the client lasts across
        reconnections: calls made while the connection is down wait for
        the next one, and its reply queue (named by the client, not
        exclusive, deleted by the broker once unused for
        L{REPLY_QUEUE_EXPIRES} seconds) keeps the replies that come
        meanwhile.
    @param service_name: the service's routing key (the servers bind their
        queue to C{exchange} with it).
    @param client_class: the generated client class (C{Service.Client}).
    @param exchange: the exchange the servers' queue is bound to.
    @param responses_exchange: the exchange the servers publish replies
        to; the reply queue is bound to it with its own name as routing
        key.  C{""} is the default exchange (no binding needed).
    @param reply_queue: an existing queue to take replies from (nothing is
        declared or bound for it); by default a server-named exclusive
        queue is declared.
    @param timeout: seconds each call waits for its reply before failing
        with L{CallTimeout}; C{None} waits for ever.
    @param protocol_factory: the Thrift protocol factory for calls and
        replies (L{binary_protocol} by default); C{iprot_factory}
        and C{oprot_factory} set each direction apart.
    @param declare: declare C{exchange} and C{responses_exchange} (direct,
        not durable, as txAMQP does) unless they are the broker's own.
    @param client_name: the C{thriftClientName} header; txAMQP's
        C{<client class name><service name>} by default.
    @return: a L{Deferred} firing with the started client, or failing with
        the broker's error (the channel it opened is then closed).
    """
    return from_coroutine(
        _open_client(
            amqp,
            service_name,
            client_class,
            exchange=exchange,
            responses_exchange=responses_exchange,
            reply_queue=reply_queue,
            timeout=timeout,
            iprot_factory=iprot_factory or protocol_factory,
            oprot_factory=oprot_factory or protocol_factory,
            declare=declare,
            client_name=client_name,
        )
    )


async def _open_client(
    amqp: Amqp,
    service_name: str,
    client_class: Callable[[Any, Any], ClientT],
    *,
    exchange: str,
    responses_exchange: str,
    reply_queue: str | None,
    timeout: float | None,
    iprot_factory: Any,
    oprot_factory: Any,
    declare: bool,
    client_name: str | None,
) -> ThriftClient[ClientT]:
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive or None, not {timeout!r}")
    async with set_up_channel(amqp) as (channel, owns):
        if declare:
            await declare_exchange(channel, exchange)
            await declare_exchange(channel, responses_exchange)
        if reply_queue is None and isinstance(channel, RecoveringChannel):
            # a name of our own, and a queue that outlives a lost connection
            reply_queue = f"thrift.reply.{uuid.uuid4().hex}"
            await channel.queue_declare(
                queue=reply_queue,
                arguments={"x-expires": int(REPLY_QUEUE_EXPIRES * 1000)},
            )
            if responses_exchange:
                await channel.queue_bind(
                    queue=reply_queue, exchange=responses_exchange, routing_key=reply_queue
                )
        elif reply_queue is None:
            ok = await channel.queue_declare(queue="", exclusive=True, auto_delete=True)
            reply_queue = str(ok.queue)
            if responses_exchange:
                await channel.queue_bind(
                    queue=reply_queue, exchange=responses_exchange, routing_key=reply_queue
                )
        client = ThriftClient(
            channel,
            service_name,
            client_class,
            reply_queue,
            exchange=exchange,
            timeout=timeout,
            iprot_factory=iprot_factory,
            oprot_factory=oprot_factory,
            client_name=client_name,
            owns_channel=owns,
        )
        return await client.start()


def connect_client(
    amqp: Amqp,
    service_name: str,
    client_class: Callable[[Any, Any], ClientT],
    **kwargs: Any,
) -> Deferred[ClientT]:
    """
    Make a Thrift client for a service and give its generated stub::

        calc = await connect_client(amqp, "calculator", Calculator.Client)
        print(await calc.add(1, 2))
        await close_client(calc)

    The arguments are those of L{open_client}.

    @return: a L{Deferred} firing with the generated client (an instance of
        C{client_class}) whose calls go over AMQP, or failing as
        L{open_client} does.
    """
    return open_client(amqp, service_name, client_class, **kwargs).addCallback(
        lambda client: client.stub
    )


def close_client(stub: object) -> Deferred[None]:
    """
    Close the L{ThriftClient} behind a stub from L{connect_client}.

    @return: what L{ThriftClient.close} returns.
    @raise TypeError: C{stub} was not made by L{connect_client}.
    """
    transport = getattr(stub, "_transport", None)
    if not isinstance(transport, AMQPClientTransport):
        raise TypeError(f"{stub!r} is not a Thrift client made by connect_client")
    return transport.client.close()
