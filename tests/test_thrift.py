# -*- test-case-name: tests.test_thrift -*-
"""
Unit tests for L{txamqp_next.thrift}: the client and server driven by a
fake broker over a L{StringTransport} with a L{Clock}, and the twistd
options for a Thrift server.
"""

from __future__ import annotations

from struct import pack
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import (
    TBinaryProtocol,
    TBinaryProtocolAccelerated,
    TBinaryProtocolAcceleratedFactory,
    TBinaryProtocolFactory,
)
from thrift.Thrift import TMessageType
from thrift.transport.TTransport import TMemoryBuffer, TTransportException
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import Broker, open_broker
from tests.thrift.support import Handler, calculator, processor, ttypes
from txamqp_next import _frames, tap
from txamqp_next._deferred import fail
from txamqp_next.channel import Channel
from txamqp_next.errors import AMQPError, LocalProtocolError, NotFound
from txamqp_next.message import Message
from txamqp_next.service import ConsumerService
from txamqp_next.thrift import (
    CallTimeout,
    ServiceUnavailable,
    ThriftClient,
    ThriftServer,
    ThriftServerService,
    ThriftTransportError,
    TransportClosed,
    binary_protocol,
    close_client,
    open_client,
)
from txamqp_next.thrift._client import (
    _BinaryProtocol,
    _BinaryProtocolFactory,
    read_header,
    reading_protocol,
    set_up_channel,
)

BINARY = TBinaryProtocolFactory()


def thrift_message(name: str, mtype: int, seqid: int, struct: Any) -> bytes:
    buffer = TMemoryBuffer()
    oprot = BINARY.getProtocol(buffer)
    oprot.writeMessageBegin(name, mtype, seqid)
    struct.write(oprot)
    oprot.writeMessageEnd()
    return bytes(buffer.getvalue())


def outcome(d: Deferred[Any]) -> Any:
    """
    What C{d} fired with (a L{Failure} if it failed), or C{"pending"}.
    """
    if not d.called or isinstance(d.result, Deferred):
        # unfired, or waiting on the Deferred a callback returned
        return "pending"
    box: list[Any] = []
    d.addBoth(box.append)
    return box[0]


class ClientTests(SynchronousTestCase):
    """
    L{ThriftClient} on a channel of a fake broker.
    """

    def setUp(self) -> None:
        self.Calculator = calculator()
        self.broker: Broker = open_broker()
        self.channel = self.broker.open_channel()
        self.client: ThriftClient[Any] = ThriftClient(
            self.channel, "calc", self.Calculator.Client, "rq", exchange="ex", timeout=5
        )
        started = self.client.start()
        [consume] = self.broker.sent()
        self.assertEqual(
            (consume.NAME, consume.queue, consume.no_ack), ("basic.consume", "rq", True)
        )
        self.broker.reply("basic.consume-ok", consumer_tag="ctag")
        self.assertIs(self.broker.successResult(started), self.client)
        self.stub = self.client.stub

    def published(self) -> list[tuple[Any, Any, bytes]]:
        """
        C{(basic.publish, properties, body)} for each message published.
        """
        frames = self.broker.frames_sent()
        out: list[tuple[Any, Any, bytes]] = []
        for kind, _, item in frames:
            if kind == _frames.FRAME_METHOD and item.NAME == "basic.publish":
                out.append((item, None, b""))
            elif kind == _frames.FRAME_HEADER:
                method, _, body = out[-1]
                out[-1] = (method, item[2], body)
            elif kind == _frames.FRAME_BODY:
                method, props, body = out[-1]
                out[-1] = (method, props, body + item)
        return out

    def reply(self, body: bytes, delivery_tag: int = 1) -> None:
        self.broker.deliver("ctag", delivery_tag, body=body)

    def add_reply(self, seqid: int, value: int) -> bytes:
        result = self.Calculator.add_result(success=value)
        return thrift_message("add", TMessageType.REPLY, seqid, result)

    def test_call_message(self) -> None:
        """
        A call is one mandatory message to the service's exchange with its
        name as routing key, the reply queue as C{reply_to}, txAMQP's
        C{thriftClientName} header and the Thrift message as body.
        """
        self.stub.add(1, 2)
        [(method, props, body)] = self.published()
        self.assertEqual(
            (method.exchange, method.routing_key, method.mandatory), ("ex", "calc", True)
        )
        self.assertEqual(props.reply_to, "rq")
        self.assertEqual(props.headers, {"thriftClientName": "Clientcalc"})
        args = self.Calculator.add_args(a=1, b=2)
        self.assertEqual(body, thrift_message("add", TMessageType.CALL, 1, args))

    def test_reply(self) -> None:
        """
        A reply fires its call by sequence id, in any order, and cancels
        the call's timer.
        """
        first, second = self.stub.add(1, 2), self.stub.add(3, 4)
        self.reply(self.add_reply(2, 7))
        self.reply(self.add_reply(1, 3), 2)
        self.assertEqual((outcome(first), outcome(second)), (3, 7))
        self.assertEqual(self.client.pending, 0)
        self.broker.clock.advance(0)  # the reactor turn ends
        self.assertEqual(self.broker.clock.getDelayedCalls(), [])

    def test_timeout(self) -> None:
        """
        A call with no reply within the timeout fails with L{CallTimeout}, a
        C{TTransportException} of type C{TIMED_OUT}; its late reply is
        dropped.
        """
        call = self.stub.add(1, 2)
        self.broker.clock.advance(4.9)
        self.assertEqual(outcome(call), "pending")
        self.broker.clock.advance(0.1)
        failure = outcome(call)
        self.assertIsInstance(failure, Failure)
        error = failure.value
        self.assertIsInstance(error, CallTimeout)
        self.assertIsInstance(error, TTransportException)
        self.assertIsInstance(error, AMQPError)
        self.assertEqual(
            (error.type, error.method, error.seqid), (TTransportException.TIMED_OUT, "add", 1)
        )
        self.reply(self.add_reply(1, 3))
        self.assertEqual(self.stub._reqs, {})
        self.assertEqual(self.client.pending, 0)

    def timers(self) -> list[Any]:
        """
        The clock's delayed calls once the reactor turn has ended (the
        connection's end-of-turn write is not a call's timer).
        """
        self.broker.clock.advance(0)
        return list(self.broker.clock.getDelayedCalls())

    def assert_times_out_in(self, call: Deferred[Any], seconds: float) -> None:
        """
        C{call} is still waiting 0.1 s before C{seconds} have passed, and
        has failed with L{CallTimeout} once they have.
        """
        self.broker.clock.advance(seconds - 0.1)
        self.assertEqual(outcome(call), "pending")
        self.broker.clock.advance(0.1)
        self.assertIsInstance(outcome(call).value, CallTimeout)

    def test_one_timer_for_many_calls(self) -> None:
        """
        However many calls wait, the client has one timer; each call still
        times out its own C{timeout} after it was sent, and once no call
        waits no timer is left.
        """
        clock = self.broker.clock
        early = [self.stub.add(i, i) for i in range(50)]
        self.assertEqual(len(self.timers()), 1)
        clock.advance(2)
        late = [self.stub.add(i, i) for i in range(50)]
        self.assertEqual(len(self.timers()), 1)
        self.reply(self.add_reply(1, 0))
        self.reply(self.add_reply(60, 20), 2)
        clock.advance(2.9)
        self.assertEqual({outcome(d) for d in early[1:] + late[:9] + late[10:]}, {"pending"})
        clock.advance(0.1)
        self.assertEqual(outcome(early[0]), 0)
        self.assertEqual(outcome(late[9]), 20)
        for d in early[1:]:
            self.assertIsInstance(outcome(d).value, CallTimeout)
        self.assertEqual({outcome(d) for d in late[:9] + late[10:]}, {"pending"})
        self.assertEqual(len(self.timers()), 1)
        clock.advance(1.9)
        self.assertEqual(outcome(late[0]), "pending")
        clock.advance(0.1)
        for d in late[:9] + late[10:]:
            self.assertIsInstance(outcome(d).value, CallTimeout)
        self.assertEqual(self.client.pending, 0)
        self.assertEqual(self.timers(), [])

    def test_timeout_lowered(self) -> None:
        """
        A call keeps the timeout the client had when it was sent: lowering
        it makes the later calls time out first, each with its own timeout
        in its error.
        """
        clock = self.broker.clock
        first = self.stub.add(1, 1)
        self.client.timeout = 1
        second = self.stub.add(2, 2)
        clock.advance(1)
        self.assertEqual(outcome(first), "pending")
        error = outcome(second).value
        self.assertIsInstance(error, CallTimeout)
        self.assertIn("within 1s", str(error))
        clock.advance(3.9)
        self.assertEqual(outcome(first), "pending")
        clock.advance(0.1)
        self.assertIn("within 5s", str(outcome(first).value))
        self.assertEqual(self.timers(), [])

    def test_no_timeout(self) -> None:
        """
        With C{timeout=None} a call never times out and starts no timer; a
        timeout set later applies to the calls sent after.
        """
        self.client.timeout = None
        forever = self.stub.add(1, 1)
        self.assertEqual(self.timers(), [])
        self.client.timeout = 2
        bounded = self.stub.add(2, 2)
        self.broker.clock.advance(1000)
        self.assertEqual(outcome(forever), "pending")
        self.assertIsInstance(outcome(bounded).value, CallTimeout)
        self.assertEqual(self.timers(), [])

    def test_sequence_id_used_again(self) -> None:
        """
        A call sent with the sequence id of one still waiting (the
        generated client's counter started again) takes that id's place,
        with its own deadline, and the calls sent between them still time
        out on time.
        """
        clock = self.broker.clock
        self.stub.add(1, 1)
        clock.advance(1)
        between = self.stub.add(2, 2)
        clock.advance(1)
        self.stub._seqid = 0
        again = self.stub.add(3, 3)
        self.assertEqual(self.client.pending, 2)
        self.assert_times_out_in(between, 4)
        self.assert_times_out_in(again, 1)
        self.assertEqual(self.timers(), [])

    def test_call_from_timeout_callback(self) -> None:
        """
        A call made by the errback of a call that timed out gets its own
        full timeout, on the one timer.
        """
        clock = self.broker.clock
        again: list[Deferred[Any]] = []
        self.stub.add(1, 1).addErrback(lambda _: again.append(self.stub.add(2, 2)))
        self.stub.add(3, 3).addErrback(lambda _: None)
        clock.advance(5)
        [retry] = again
        self.assertEqual(len(self.timers()), 1)
        self.assert_times_out_in(retry, 5)
        self.assertEqual(self.timers(), [])

    def test_call_from_timeout_callback_keeps_earlier_deadlines(self) -> None:
        """
        A call made by the errback of a call that timed out does not delay
        the calls sent before it: each still times out on time.
        """
        clock = self.broker.clock
        again: list[Deferred[Any]] = []
        self.stub.add(1, 1).addErrback(lambda _: again.append(self.stub.add(2, 2)))
        clock.advance(1)
        waiting = self.stub.add(3, 3)
        clock.advance(4)
        [retry] = again
        self.assert_times_out_in(waiting, 1)
        self.assert_times_out_in(retry, 4)
        self.assertEqual(self.timers(), [])

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("call"), st.sampled_from([None, 0.5, 2.0]), st.booleans()),
                st.tuples(st.just("reply"), st.integers(0, 15), st.just(False)),
                st.tuples(st.just("wait"), st.sampled_from([0.0, 0.25, 1.0]), st.just(False)),
            ),
            max_size=30,
        )
    )
    def test_timeouts_as_timers_per_call(self, steps: list[tuple[str, Any, bool]]) -> None:
        """
        Whatever the calls, their timeouts (changed between calls, or none),
        replies, the time between them and the calls made again by the
        errback of a call that timed out, each call ends as it would with a
        timer of its own: timed out once its own timeout has passed without
        a reply, answered otherwise; the client never has more than one
        timer, and none once no call waits.
        """
        self.setUp()
        clock = self.broker.clock
        # per call (by sequence id): what it ended with, in the real client
        ended: dict[int, list[Any]] = {}
        # and in the model: state, deadline, whether it is made again on
        # timing out
        model: dict[int, list[Any]] = {}

        def call(again: bool) -> None:
            seqid = len(ended) + 1
            timeout = self.client.timeout
            deadline = None if timeout is None else clock.seconds() + timeout
            model[seqid] = ["pending", deadline, again]
            ended[seqid] = []

            def end(result: Any) -> None:
                ended[seqid].append(result)
                if again and isinstance(result, Failure) and result.check(CallTimeout):
                    call(False)

            self.stub.add(seqid, 0).addBoth(end)

        tag = 0
        for kind, value, again in steps:
            if kind == "call":
                self.client.timeout = value
                call(again)
            elif kind == "reply" and value < len(ended):
                seqid = value + 1
                if model[seqid][0] == "pending":
                    model[seqid][0] = "answered"
                tag += 1
                self.reply(self.add_reply(seqid, seqid), tag)
            elif kind == "wait":
                # the model first: calls time out in the order of their
                # deadlines; one made again gets the client's timeout then
                end = clock.seconds() + value
                made = len(model)
                while True:
                    due = [
                        (entry[1], seqid)
                        for seqid, entry in model.items()
                        if entry[0] == "pending" and entry[1] is not None and entry[1] <= end
                    ]
                    if not due:
                        break
                    deadline, seqid = min(due)
                    model[seqid][0] = "timed out"
                    if model[seqid][2]:
                        made += 1
                        timeout = self.client.timeout
                        model[made] = [
                            "pending",
                            None if timeout is None else deadline + timeout,
                            False,
                        ]
                clock.advance(value)
                self.assertEqual(len(ended), len(model))
            self.assertLessEqual(len(self.timers()), 1)
            for seqid, (state, _, _) in model.items():
                if state == "pending":
                    self.assertEqual(ended[seqid], [], seqid)
                elif state == "answered":
                    self.assertEqual(ended[seqid], [seqid])
                else:
                    [failure] = ended[seqid]
                    self.assertIsInstance(failure.value, CallTimeout)
        if self.client.pending == 0:
            self.assertEqual(self.timers(), [])
        self.flushLoggedErrors()

    def test_returned(self) -> None:
        """
        A call the broker returns fails at once with L{ServiceUnavailable}.
        """
        call = self.stub.add(1, 2)
        [(_, _, body)] = self.published()
        self.broker.send(
            self.broker.frames.returned(1, body, "ex", "calc", properties={"reply_to": "rq"})
        )
        error = outcome(call).value
        self.assertIsInstance(error, ServiceUnavailable)
        self.assertEqual((error.type, error.routing_key), (TTransportException.NOT_OPEN, "calc"))
        self.assertIn("312 NO_ROUTE", str(error))
        self.broker.clock.advance(0)  # the reactor turn ends
        self.assertEqual(self.broker.clock.getDelayedCalls(), [])

    def test_garbage_reply(self) -> None:
        """
        A reply that is not a Thrift message is dropped; the call still
        waits, then times out.
        """
        call = self.stub.add(1, 2)
        self.reply(b"\xff\xff")
        self.assertEqual(outcome(call), "pending")
        self.broker.clock.advance(5)
        self.assertIsInstance(outcome(call).value, CallTimeout)

    def test_malformed_reply(self) -> None:
        """
        A reply with a good header but a broken body fails its call with
        L{ThriftTransportError} rather than leaving it waiting.
        """
        call = self.stub.add(1, 2)
        self.reply(self.add_reply(1, 3)[:-4])
        self.assertIsInstance(outcome(call).value, ThriftTransportError)
        self.assertEqual(self.stub._reqs, {})

    def test_reply_for_other_method(self) -> None:
        """
        A reply naming another method than its call fails the call.
        """
        call = self.stub.add(1, 2)
        reply = thrift_message(
            "echo", TMessageType.REPLY, 1, self.Calculator.echo_result(success=b"x")
        )
        self.reply(reply)
        self.assertIsInstance(outcome(call).value, ThriftTransportError)

    def test_oneway(self) -> None:
        """
        A oneway call fires once published and starts no timer.
        """
        call = self.stub.notify("hi")
        self.assertIsNone(outcome(call))
        self.broker.clock.advance(0)  # the reactor turn ends
        self.assertEqual(self.broker.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.published()), 1)

    def test_nacked_in_confirm_mode(self) -> None:
        """
        On a channel in confirm mode, a call the broker nacks fails with
        L{ThriftTransportError}; one it acks waits for its reply.
        """
        channel = self.broker.open_channel()
        channel.confirm_select()
        self.broker.sent()
        self.broker.reply("confirm.select-ok", channel=channel.id)
        client: ThriftClient[Any] = ThriftClient(
            channel, "calc", self.Calculator.Client, "rq2", exchange="ex", timeout=5
        )
        started = client.start()
        self.broker.sent()
        self.broker.reply("basic.consume-ok", channel=channel.id, consumer_tag="ctag2")
        self.broker.successResult(started)
        nacked, acked = client.stub.add(1, 2), client.stub.add(3, 4)
        self.broker.reply("basic.nack", channel=channel.id, delivery_tag=1, multiple=False)
        self.broker.reply("basic.ack", channel=channel.id, delivery_tag=2, multiple=False)
        error = outcome(nacked).value
        self.assertIsInstance(error, ThriftTransportError)
        self.assertIn("refused call add", str(error))
        self.assertEqual(outcome(acked), "pending")
        self.assertEqual(client.pending, 1)

    def test_publish_refused(self) -> None:
        """
        A call whose publish the channel refuses at once fails at once with
        L{ThriftTransportError}, leaving no call waiting and no timer.
        """

        refused = LocalProtocolError(505, "refused for the test")
        with mock.patch.object(self.channel, "basic_publish", return_value=fail(refused)):
            error = outcome(self.stub.add(1, 2)).value
        self.assertIsInstance(error, ThriftTransportError)
        self.assertIn("could not be published", str(error))
        self.assertEqual(self.client.pending, 0)
        self.broker.clock.advance(0)  # the reactor turn ends
        self.assertEqual(self.broker.clock.getDelayedCalls(), [])

    def test_channel_closed(self) -> None:
        """
        The broker closing the channel fails the waiting calls with
        L{TransportClosed} carrying the broker's error; later calls fail at
        once; no timer is left.
        """
        call = self.stub.add(1, 2)
        self.broker.reply(
            "channel.close", reply_code=404, reply_text="NOT_FOUND", class_id=60, method_id=40
        )
        error = outcome(call).value
        self.assertIsInstance(error, TransportClosed)
        self.assertIsInstance(error.reason, NotFound)
        later = outcome(self.stub.add(1, 2)).value
        self.assertIsInstance(later, TransportClosed)
        self.broker.clock.advance(0)  # the reactor turn ends
        self.assertEqual(self.broker.clock.getDelayedCalls(), [])

    def test_connection_lost(self) -> None:
        """
        A lost connection fails every waiting call with L{TransportClosed}.
        """
        calls = [self.stub.add(i, i) for i in range(3)]
        self.broker.lose()
        for call in calls:
            self.assertIsInstance(outcome(call).value, TransportClosed)

    def test_close(self) -> None:
        """
        Closing fails waiting calls and cancels the reply consumer; calls
        made afterwards fail at once.
        """
        call = self.stub.add(1, 2)
        self.published()
        closing = close_client(self.stub)
        self.assertIsInstance(outcome(call).value, TransportClosed)
        [cancel] = self.broker.sent()
        self.assertEqual(cancel.NAME, "basic.cancel")
        self.broker.reply("basic.cancel-ok", consumer_tag="ctag")
        self.assertIsNone(outcome(closing))
        self.assertIsInstance(outcome(self.stub.add(1, 2)).value, TransportClosed)
        self.assertEqual(self.published(), [])

    def test_bad_arguments(self) -> None:
        """
        A non-positive timeout, or closing something that is not one of our
        stubs, is refused.
        """
        with self.assertRaises(ValueError):
            ThriftClient(self.channel, "calc", self.Calculator.Client, "rq", timeout=0)
        with self.assertRaises(TypeError):
            close_client(object())


class BinaryProtocolTests(SynchronousTestCase):
    """
    The default protocol (L{binary_protocol}: Thrift's binary protocol with
    its C codec) puts the same bytes on the wire as Thrift's Python codec,
    the one txAMQP's Thrift code uses, and reads what that codec writes.
    """

    def structs(self) -> list[Any]:
        module = calculator()
        types = ttypes()
        return [
            module.add_args(a=-(2**31), b=2**31 - 1),
            module.echo_args(data=bytes(range(256)) * 3),
            module.fail_args(why="naïve ✓"),
            module.divide_result(oops=types.DivideByZero(message="by zero")),
            module.echo_result(success=b""),
            module.add_result(success=42),
        ]

    def encode(self, factory: Any, struct: Any) -> bytes:
        buffer = TMemoryBuffer()
        oprot = factory.getProtocol(buffer)
        oprot.writeMessageBegin("m", TMessageType.CALL, 7)
        struct.write(oprot)
        oprot.writeMessageEnd()
        return bytes(buffer.getvalue())

    def decode(self, factory: Any, data: bytes, cls: type) -> Any:
        iprot = factory.getProtocol(TMemoryBuffer(data))
        self.assertEqual(iprot.readMessageBegin(), ("m", TMessageType.CALL, 7))
        struct = cls()
        struct.read(iprot)
        iprot.readMessageEnd()
        return struct

    def test_uses_the_c_codec(self) -> None:
        """
        Where Thrift was built with C{fastbinary} (its sdist builds it
        where a C compiler is found), the default protocol encodes through
        it, and the comparisons below are between the C and the Python
        codecs; where not, it is Thrift's Python codec.
        """
        try:
            from thrift.protocol import fastbinary
        except ImportError:
            expected = None
        else:
            expected = fastbinary.encode_binary
        oprot = binary_protocol().getProtocol(TMemoryBuffer())
        self.assertIs(oprot._fast_encode, expected)

    def test_protocols_as_thrift_builds_them(self) -> None:
        """
        L{binary_protocol}'s protocols are the ones Thrift's factory builds,
        attribute for attribute, each with its own transport; a limit set on
        the factory afterwards holds for the next protocol.
        """
        factory = binary_protocol()
        self.assertIsInstance(factory, _BinaryProtocolFactory)
        self.assertIsInstance(factory, TBinaryProtocolAcceleratedFactory)
        reference = TBinaryProtocolAcceleratedFactory()
        first, second = TMemoryBuffer(), TMemoryBuffer()
        protocols = [factory.getProtocol(first), factory.getProtocol(second)]
        self.assertEqual([p.trans for p in protocols], [first, second])
        for protocol in protocols:
            self.assertIs(type(protocol), _BinaryProtocol)
            self.assertIsInstance(protocol, TBinaryProtocolAccelerated)
            self.assertEqual(vars(protocol), vars(reference.getProtocol(protocol.trans)))
        oprot = factory.getProtocol(TMemoryBuffer())
        oprot.writeString("hello")
        unlimited = factory.getProtocol(TMemoryBuffer(oprot.trans.getvalue()))
        self.assertEqual(unlimited.readString(), "hello")
        factory.string_length_limit = reference.string_length_limit = 4
        limited = factory.getProtocol(TMemoryBuffer(oprot.trans.getvalue()))
        self.assertEqual(vars(limited), vars(reference.getProtocol(limited.trans)))
        error = self.assertRaises(TTransportException, limited.readString)
        self.assertEqual(error.type, TTransportException.SIZE_LIMIT)

    def test_same_bytes(self) -> None:
        """
        Calls and replies encode to the same bytes with either codec, and
        each codec reads what the other wrote back to an equal struct.
        """
        fast = binary_protocol()
        for struct in self.structs():
            reference = self.encode(BINARY, struct)
            self.assertEqual(self.encode(fast, struct), reference, struct)
            self.assertEqual(self.decode(fast, reference, type(struct)), struct)
            self.assertEqual(self.decode(BINARY, self.encode(fast, struct), type(struct)), struct)


def header(version: int, mtype: int, name: bytes, seqid: int) -> bytes:
    """
    A message header in Thrift's binary protocol: strict (a negative
    C{version}: the version word, the name, the seqid) or not (the name's
    size, the name, the type, the seqid).
    """
    if version < 0:
        return pack(">ii", version | mtype, len(name)) + name + pack(">i", seqid)
    return pack(">i", len(name)) + name + pack(">Bi", mtype, seqid)


class ReadHeaderTests(SynchronousTestCase):
    """
    L{read_header} reads a strict binary header straight from the bytes
    when the factory is L{binary_protocol}'s, with the same result or error
    as reading it through the factory's protocol.
    """

    def reference(self, body: bytes) -> Any:
        try:
            return read_header(body, TBinaryProtocolAcceleratedFactory())
        except ThriftTransportError:
            return ThriftTransportError

    def fast(self, body: bytes, factory: Any = None) -> Any:
        try:
            return read_header(body, factory or binary_protocol())
        except ThriftTransportError:
            return ThriftTransportError

    def test_strict_header_read_directly(self) -> None:
        """
        A strict header does not build a protocol.
        """
        factory = binary_protocol()
        body = header(TBinaryProtocol.VERSION_1, TMessageType.CALL, "añadir".encode(), 7)
        with mock.patch.object(factory, "getProtocol", side_effect=AssertionError):
            self.assertEqual(read_header(body + b"args", factory), ("añadir", TMessageType.CALL, 7))

    @settings(max_examples=400, deadline=None)
    @given(
        version=st.sampled_from([TBinaryProtocol.VERSION_1, -0x7FFE0000, -1, 0, 1, 2**31 - 1]),
        mtype=st.integers(0, 255),
        name=st.one_of(st.text(max_size=20).map(str.encode), st.binary(max_size=20)),
        seqid=st.integers(-(2**31), 2**31 - 1),
        cut=st.integers(0, 40),
        tail=st.binary(max_size=8),
    )
    def test_same_as_protocol(
        self, version: int, mtype: int, name: bytes, seqid: int, cut: int, tail: bytes
    ) -> None:
        """
        Strict and non-strict headers, cut short or followed by more bytes,
        with names that are or are not UTF-8: the same result or error
        either way, also under a string length limit.
        """
        body = header(version, mtype, name, seqid) + tail
        for data in (body, body[:cut]):
            self.assertEqual(self.fast(data), self.reference(data), data)
            limited = binary_protocol()
            limited.string_length_limit = 3
            reference = TBinaryProtocolAcceleratedFactory()
            reference.string_length_limit = 3
            try:
                expected = read_header(data, reference)
            except ThriftTransportError:
                expected = ThriftTransportError
            self.assertEqual(self.fast(data, limited), expected, data)

    @given(st.binary(max_size=40))
    @settings(max_examples=300, deadline=None)
    def test_any_bytes(self, data: bytes) -> None:
        """
        Whatever the bytes, the same result or error.
        """
        self.assertEqual(self.fast(data), self.reference(data))


def result_or_error(action: Any) -> Any:
    """
    What C{action()} returns, or the type and text of what it raises.
    """
    try:
        return action()
    except Exception as e:
        return (type(e), str(e))


class MessageBeginTests(SynchronousTestCase):
    """
    L{binary_protocol}'s protocols write a message header in one step, and
    read the one L{reading_protocol} read from the bytes: the same bytes,
    results and errors as Thrift's own protocol, and the transport left at
    the same place.
    """

    @settings(max_examples=300, deadline=None)
    @given(
        name=st.one_of(st.text(max_size=20), st.binary(max_size=20), st.none()),
        mtype=st.one_of(st.integers(0, 255), st.integers(-(2**40), 2**40)),
        seqid=st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**40), 2**40)),
        strict=st.booleans(),
    )
    def test_write_same_as_thrift(self, name: Any, mtype: int, seqid: int, strict: bool) -> None:
        """
        Strict and non-strict, names that are text (encodable or not),
        bytes or neither, types and seqids in and out of range: the bytes
        written are Thrift's, or the error is the same.
        """
        got, expected = TMemoryBuffer(), TMemoryBuffer()
        ours = binary_protocol().getProtocol(got)
        theirs = TBinaryProtocolAcceleratedFactory().getProtocol(expected)
        self.assertIs(type(ours), _BinaryProtocol)
        ours.strictWrite = theirs.strictWrite = strict
        written = result_or_error(lambda: theirs.writeMessageBegin(name, mtype, seqid))
        self.assertEqual(
            result_or_error(lambda: ours.writeMessageBegin(name, mtype, seqid)), written
        )
        if written is None:
            self.assertEqual(got.getvalue(), expected.getvalue())

    def test_write_strict_in_one_step(self) -> None:
        """
        A strict header is one write to the transport.
        """
        transport = mock.Mock()
        binary_protocol().getProtocol(transport).writeMessageBegin("add", TMessageType.CALL, 9)
        transport.write.assert_called_once_with(
            header(TBinaryProtocol.VERSION_1, TMessageType.CALL, b"add", 9)
        )

    @settings(max_examples=400, deadline=None)
    @given(
        version=st.sampled_from([TBinaryProtocol.VERSION_1, -0x7FFE0000, -1, 0, 1]),
        mtype=st.integers(0, 255),
        name=st.one_of(st.text(max_size=20).map(str.encode), st.binary(max_size=20)),
        seqid=st.integers(-(2**31), 2**31 - 1),
        cut=st.integers(0, 40),
        tail=st.binary(max_size=8),
        limit=st.sampled_from([None, 3]),
    )
    def test_read_same_as_thrift(
        self,
        version: int,
        mtype: int,
        name: bytes,
        seqid: int,
        cut: int,
        tail: bytes,
        limit: int | None,
    ) -> None:
        """
        Whatever the header (strict or not, cut short, a name that is or is
        not UTF-8, over the string length limit or not): C{readMessageBegin}
        gives Thrift's result or error, and what is read next is the same.
        """
        body = header(version, mtype, name, seqid) + tail
        for data in (body, body[:cut]):
            fast = binary_protocol()
            fast.string_length_limit = limit
            reference = TBinaryProtocolAcceleratedFactory()
            reference.string_length_limit = limit
            ours = reading_protocol(fast, data)
            theirs = reference.getProtocol(TMemoryBuffer(data))
            self.assertEqual(
                result_or_error(ours.readMessageBegin), result_or_error(theirs.readMessageBegin)
            )
            self.assertEqual(ours.trans.read(100), theirs.trans.read(100))
            # a second message on the protocol is read by Thrift's code
            self.assertIsNone(ours._header)

    def test_read_strict_header_once(self) -> None:
        """
        A strict header is read from the bytes, not from the transport.
        """
        body = header(TBinaryProtocol.VERSION_1, TMessageType.REPLY, b"add", 3) + b"rest"
        protocol = reading_protocol(binary_protocol(), body)
        with mock.patch.object(protocol.trans, "read", side_effect=AssertionError):
            self.assertEqual(protocol.readMessageBegin(), ("add", TMessageType.REPLY, 3))
        self.assertEqual(protocol.trans.read(10), b"rest")

    def test_read_other_factories(self) -> None:
        """
        Another factory's protocol reads the header itself.
        """
        body = header(TBinaryProtocol.VERSION_1, TMessageType.CALL, b"add", 3) + b"rest"
        protocol = reading_protocol(BINARY, body)
        self.assertIs(type(protocol), TBinaryProtocol)
        self.assertEqual(protocol.readMessageBegin(), ("add", TMessageType.CALL, 3))
        self.assertEqual(protocol.trans.read(10), b"rest")


class SetUpChannelTests(SynchronousTestCase):
    """
    L{set_up_channel}, the channel L{open_client} and L{serve} set up on.
    """

    def test_opened_channel_closed_on_failure(self) -> None:
        """
        Given a connection, a new channel is opened and owned; when the
        set-up fails it is closed and the error passes through.
        """
        broker = open_broker()
        seen: list[tuple[Channel, bool]] = []

        async def set_up() -> None:
            async with set_up_channel(broker.client) as (channel, owns):
                seen.append((channel, owns))
                raise RuntimeError("set-up failed")

        d = Deferred.fromCoroutine(set_up())
        [(number, name)] = broker.sent_names()
        self.assertEqual(name, "channel.open")
        broker.reply("channel.open-ok", number)
        self.failureResultOf(d, RuntimeError)
        [(channel, owns)] = seen
        self.assertTrue(owns)
        self.assertEqual(channel.id, number)
        self.assertEqual(broker.sent_names(), [(number, "channel.close")])

    def test_given_channel_left_open(self) -> None:
        """
        Given a channel, it is used as it is, not owned, and left open when
        the set-up fails.
        """
        broker = open_broker()
        given = broker.open_channel()
        seen: list[tuple[Channel, bool]] = []

        async def set_up() -> None:
            async with set_up_channel(given) as (channel, owns):
                seen.append((channel, owns))
                raise RuntimeError("set-up failed")

        self.failureResultOf(Deferred.fromCoroutine(set_up()), RuntimeError)
        self.assertEqual(seen, [(given, False)])
        self.assertEqual(broker.sent_names(), [])
        self.assertIsNone(given.closed)

    def test_open_client_closes_its_channel(self) -> None:
        """
        L{open_client} given a connection closes the channel it opened when
        the client cannot be made.
        """
        broker = open_broker()

        def broken(transport: Any, factory: Any) -> Any:
            raise TypeError("not a client class")

        d = open_client(broker.client, "calc", broken, reply_queue="rq", declare=False)
        [(number, name)] = broker.sent_names()
        self.assertEqual(name, "channel.open")
        broker.reply("channel.open-ok", number)
        self.failureResultOf(d, TypeError)
        self.assertEqual(broker.sent_names(), [(number, "channel.close")])


class ServerTests(SynchronousTestCase):
    """
    L{ThriftServer} on a channel of a fake broker, in confirm mode.
    """

    def setUp(self) -> None:
        self.Calculator = calculator()
        self.broker = open_broker()
        self.channel = self.broker.open_channel()
        self.channel.confirm_select()
        self.broker.sent()
        self.broker.reply("confirm.select-ok")
        self.handler = Handler()
        self.server = ThriftServer(
            self.channel, "calc", processor(self.handler), "calc-q", responses_exchange="replies"
        )
        started = self.server.start()
        self.broker.sent()
        self.broker.reply("basic.consume-ok", consumer_tag="stag")
        self.broker.successResult(started)

    def call(self, body: bytes, reply_to: str | None = "rq", delivery_tag: int = 1) -> None:
        self.broker.deliver(
            "stag",
            delivery_tag,
            body=body,
            properties={"reply_to": reply_to} if reply_to else None,
        )

    def add_call(self, seqid: int = 1) -> bytes:
        return thrift_message("add", TMessageType.CALL, seqid, self.Calculator.add_args(a=2, b=3))

    def test_reply_then_ack(self) -> None:
        """
        The reply goes to the responses exchange with the call's
        C{reply_to} as routing key; the call is acknowledged only once the
        broker confirmed the reply.
        """
        self.call(self.add_call(9))
        frames = self.broker.frames_sent()
        methods = [item for kind, _, item in frames if kind == _frames.FRAME_METHOD]
        [publish] = methods
        self.assertEqual((publish.exchange, publish.routing_key), ("replies", "rq"))
        body = b"".join(item for kind, _, item in frames if kind == _frames.FRAME_BODY)
        iprot = BINARY.getProtocol(TMemoryBuffer(body))
        self.assertEqual(iprot.readMessageBegin(), ("add", TMessageType.REPLY, 9))
        self.assertEqual(self.server.in_flight, 1)
        self.broker.reply("basic.ack", delivery_tag=1, multiple=False)
        [ack] = self.broker.sent()
        self.assertEqual((ack.NAME, ack.delivery_tag), ("basic.ack", 1))
        self.assertEqual(self.server.in_flight, 0)

    def test_garbage_rejected(self) -> None:
        """
        A call that is not a Thrift message is rejected without requeueing.
        """
        self.call(b"\x00\x01junk")
        [reject] = self.broker.sent()
        self.assertEqual((reject.NAME, reject.requeue), ("basic.reject", False))
        self.assertEqual(len(self.flushLoggedErrors()), 1)

    def test_no_reply_to(self) -> None:
        """
        A call without C{reply_to} is processed, its reply dropped, and it
        is acknowledged.
        """
        self.call(self.add_call(), reply_to=None)
        [ack] = self.broker.sent()
        self.assertEqual(ack.NAME, "basic.ack")
        self.assertEqual(self.handler.calls, 1)

    def test_ack_refused(self) -> None:
        """
        An ack the channel refuses is logged; the call is no longer in
        flight.
        """

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        refused = fail(LocalProtocolError(505, "refused for the test"))
        with mock.patch.object(Message, "ack", return_value=refused):
            self.call(self.add_call())
            self.broker.reply("basic.ack", delivery_tag=1, multiple=False)
        self.assertEqual(self.server.in_flight, 0)
        [publish] = self.broker.sent()
        self.assertEqual(publish.NAME, "basic.publish")
        [warning] = [e for e in events if e.get("action") == "ack"]
        self.assertEqual(warning["delivery_tag"], 1)
        self.assertIn("refused for the test", str(warning["error"]))

    def test_unroutable_reply(self) -> None:
        """
        A reply the broker returns (its client is gone) is logged and the
        call still acknowledged.
        """
        self.call(self.add_call())
        frames = self.broker.frames_sent()
        body = b"".join(item for kind, _, item in frames if kind == _frames.FRAME_BODY)
        self.broker.send(self.broker.frames.returned(1, body, "replies", "rq"))
        self.broker.reply("basic.ack", delivery_tag=1, multiple=False)
        [ack] = self.broker.sent()
        self.assertEqual(ack.NAME, "basic.ack")

    def log_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def test_reply_nacked(self) -> None:
        """
        A reply the broker nacks is logged and the call left
        unacknowledged (for the broker to redeliver once the channel
        closes); it is no longer in flight.
        """
        events = self.log_events()
        self.call(self.add_call())
        self.broker.sent()
        self.broker.reply("basic.nack", delivery_tag=1, multiple=False, requeue=False)
        self.assertEqual(self.broker.sent(), [])
        self.assertEqual(self.server.in_flight, 0)
        [warning] = [e for e in events if "stays unacknowledged" in e.get("log_format", "")]
        self.assertEqual(warning["reply_to"], "rq")

    def test_reject_refused(self) -> None:
        """
        A reject the channel refuses is logged; the call is no longer in
        flight.
        """
        events = self.log_events()
        refused = fail(LocalProtocolError(505, "refused for the test"))
        with mock.patch.object(Message, "reject", return_value=refused):
            self.call(b"\x00\x01junk")
        self.assertEqual(self.server.in_flight, 0)
        self.assertEqual(self.broker.sent(), [])
        [warning] = [e for e in events if e.get("action") == "reject"]
        self.assertIn("refused for the test", str(warning["error"]))
        self.assertEqual(len(self.flushLoggedErrors()), 1)

    def test_handling_breaks(self) -> None:
        """
        An unexpected error after the processor (here the ack raising) is
        logged as such, and the call is no longer in flight.
        """
        with mock.patch.object(Message, "ack", side_effect=RuntimeError("ack broke")):
            self.call(self.add_call())
            self.broker.reply("basic.ack", delivery_tag=1, multiple=False)
        self.assertEqual(self.server.in_flight, 0)
        [logged] = self.flushLoggedErrors(RuntimeError)
        self.assertEqual(str(logged.value), "ack broke")

    def test_every_reply_confirmed_first(self) -> None:
        """
        A processor that publishes two replies has its call acknowledged
        once both are confirmed, whatever the order of the confirms.
        """
        for first, second in ((1, 2), (2, 1)):
            self.setUp()

            class Twice:
                def __init__(self, inner: Any) -> None:
                    self.inner = inner

                def process(self, iprot: Any, oprot: Any) -> Any:
                    self.inner.process(iprot, oprot)
                    oprot.trans.write(b"again")
                    oprot.trans.flush()

            self.server.processor = Twice(self.server.processor)
            self.call(self.add_call())
            self.assertEqual(
                [m.NAME for m in self.broker.sent()], ["basic.publish", "basic.publish"]
            )
            self.broker.reply("basic.ack", delivery_tag=first, multiple=False)
            self.assertEqual(self.broker.sent(), [])
            self.assertEqual(self.server.in_flight, 1)
            self.broker.reply("basic.ack", delivery_tag=second, multiple=False)
            [ack] = self.broker.sent()
            self.assertEqual((ack.NAME, ack.delivery_tag), ("basic.ack", 1))
            self.assertEqual(self.server.in_flight, 0)


class _Processor:
    """
    A processor returning what a processor may return besides a fired
    L{Deferred}: the generated processor's reply is written first.
    """

    def __init__(self, inner: Any, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self.later: Deferred[None] = Deferred()

    def process(self, iprot: Any, oprot: Any) -> Any:
        if self.kind == "raises":
            raise ValueError("the processor broke")
        if self.kind == "failure":
            return Failure(ValueError("the processor broke"))
        self.inner.process(iprot, oprot)
        if self.kind == "value":
            return None
        if self.kind == "coroutine":

            async def processing() -> None:
                await self.later

            return processing()
        return self.later


class ProcessorResultTests(SynchronousTestCase):
    """
    Whatever the processor's C{process} returns, as C{maybeDeferred} would
    take it: nothing (done), a L{Deferred} or a coroutine (done when it is),
    a L{Failure} or an exception (the call is rejected).
    """

    def serve(self, kind: str) -> tuple[Broker, _Processor]:
        broker = open_broker()
        channel = broker.open_channel()
        channel.confirm_select()
        broker.sent()
        broker.reply("confirm.select-ok")
        proc = _Processor(processor(Handler()), kind)
        server = ThriftServer(channel, "calc", proc, "calc-q", responses_exchange="replies")
        started = server.start()
        broker.sent()
        broker.reply("basic.consume-ok", consumer_tag="stag")
        broker.successResult(started)
        body = thrift_message("add", TMessageType.CALL, 4, calculator().add_args(a=2, b=3))
        broker.deliver("stag", 1, body=body, properties={"reply_to": "rq"})
        return broker, proc

    def assert_acked_after_confirm(self, broker: Broker) -> None:
        [publish] = broker.sent()
        self.assertEqual((publish.NAME, publish.routing_key), ("basic.publish", "rq"))
        broker.reply("basic.ack", delivery_tag=1, multiple=False)
        [ack] = broker.sent()
        self.assertEqual((ack.NAME, ack.delivery_tag), ("basic.ack", 1))

    def test_value(self) -> None:
        """
        A processor that returns nothing is done.
        """
        broker, _ = self.serve("value")
        self.assert_acked_after_confirm(broker)

    def test_later(self) -> None:
        """
        A L{Deferred} or a coroutine: the call is acknowledged once it is
        done and the reply confirmed, not before.
        """
        for kind in ("deferred", "coroutine"):
            broker, proc = self.serve(kind)
            [publish] = broker.sent()
            self.assertEqual(publish.NAME, "basic.publish")
            broker.reply("basic.ack", delivery_tag=1, multiple=False)
            self.assertEqual(broker.sent(), [], kind)
            proc.later.callback(None)
            [ack] = broker.sent()
            self.assertEqual((ack.NAME, ack.delivery_tag), ("basic.ack", 1), kind)

    def test_failed(self) -> None:
        """
        A L{Failure} returned or an exception raised: the call is rejected
        without requeueing and the error logged.
        """
        for kind in ("failure", "raises"):
            broker, _ = self.serve(kind)
            [reject] = broker.sent()
            self.assertEqual((reject.NAME, reject.requeue), ("basic.reject", False), kind)
            [logged] = self.flushLoggedErrors(ValueError)
            self.assertEqual(str(logged.value), "the processor broke")


class OptionsTests(SynchronousTestCase):
    """
    The twistd plugin's Thrift options.
    """

    def parse(self, *args: str) -> tap.Options:
        options = tap.Options(environ={})
        options.parseOptions(list(args))
        return options

    def test_thrift_only(self) -> None:
        """
        C{--thrift-service} and C{--thrift-processor} suffice; the processor
        factory is called; the service is a L{ThriftServerService}.
        """
        options = self.parse(
            "--thrift-service",
            "calc",
            "--thrift-processor",
            "tests.thrift.support.make_processor",
            "--thrift-exchange=services",
            "--thrift-responses-exchange=responses",
            "--thrift-queue=pool",
            "--thrift-prefetch=7",
        )
        self.assertTrue(callable(options["thrift-processor"].process))
        service = tap.makeService(options)
        assert isinstance(service, ThriftServerService)
        self.assertEqual(
            (service.service_name, service.exchange, service.responses_exchange),
            ("calc", "services", "responses"),
        )
        self.assertEqual((service.queue, service.prefetch), ("pool", 7))
        self.assertFalse(service.running)

    def test_both(self) -> None:
        """
        A consumer and a Thrift server together make a L{MultiService} of
        both.
        """
        options = self.parse(
            "--queue=q",
            "--handler=examples.handler.show",
            "--thrift-service=calc",
            "--thrift-processor=tests.thrift.support.make_processor",
        )
        service = tap.makeService(options)
        assert isinstance(service, MultiService)
        kinds = sorted(type(s).__name__ for s in service)
        self.assertEqual(kinds, [ConsumerService.__name__, ThriftServerService.__name__])

    def test_required(self) -> None:
        """
        A Thrift service needs a processor and the other way round; with
        neither Thrift nor consumer options, the error mentions both.
        """
        with self.assertRaises(UsageError) as processor_missing:
            self.parse("--thrift-service=calc")
        self.assertIn("--thrift-processor", str(processor_missing.exception))
        with self.assertRaises(UsageError) as service_missing:
            self.parse("--thrift-processor=tests.thrift.support.make_processor")
        self.assertIn("--thrift-service", str(service_missing.exception))
        with self.assertRaises(UsageError) as nothing:
            self.parse()
        self.assertIn("--queue", str(nothing.exception))
        self.assertIn("--thrift-service", str(nothing.exception))

    def test_bad_values(self) -> None:
        """
        An unknown protocol or an out-of-range prefetch is a usage error.
        """
        base = ["--thrift-service=calc", "--thrift-processor=tests.thrift.support.make_processor"]
        with self.assertRaises(UsageError) as protocol:
            self.parse(*base, "--thrift-protocol=xml")
        self.assertIn("binary, compact, json", str(protocol.exception))
        with self.assertRaises(UsageError):
            self.parse(*base, "--thrift-prefetch=70000")

    def test_processor_resolution(self) -> None:
        """
        C{--thrift-processor} takes a processor or a factory of one; other
        things are refused with the reason.
        """
        made = tap.resolve_processor("tests.thrift.support.make_processor")
        self.assertTrue(callable(made.process))
        self.assertIs(tap.resolve_processor("tests.test_thrift.PROCESSOR"), PROCESSOR)
        for name, fragment in [
            ("tests.test_thrift.NOT_CALLABLE", "neither a Thrift processor"),
            ("tests.test_thrift.returns_int", "not a Thrift processor"),
            ("tests.test_thrift.raises", "ValueError"),
            ("tests.test_thrift.missing", "cannot be found"),
            ("processor", "dotted name"),
        ]:
            with self.assertRaises(UsageError) as caught:
                tap.resolve_processor(name)
            self.assertIn(fragment, str(caught.exception))


PROCESSOR = processor(Handler())
NOT_CALLABLE = 3


def returns_int() -> int:
    return 1


def raises() -> None:
    raise ValueError("no processor today")


class ContribTests(SynchronousTestCase):
    """
    txAMQP's names in L{txamqp_next.contrib.thrift}.
    """

    def test_delegate_queues_returns(self) -> None:
        """
        L{ThriftTwistedDelegate} puts a returned message carrying a
        C{thriftClientName} header on that client's return queue, and only
        logs one without.
        """
        from twisted.internet.task import Clock

        from txamqp_next._methods import methods_for
        from txamqp_next._txmessage import TxMessage
        from txamqp_next.content import Content
        from txamqp_next.contrib.thrift.client import ThriftTwistedDelegate
        from txamqp_next.contrib.thrift.protocol import ThriftAMQClient
        from txamqp_next.spec import load

        methods = methods_for(load())
        delegate = ThriftTwistedDelegate()
        client = ThriftAMQClient(delegate, clock=Clock())
        self.assertEqual(client.replyToField, "reply-to")

        def returned(headers: dict[str, Any] | None) -> TxMessage:
            # what the compat client hands its delegate: a txAMQP message
            # whose content holds the properties that are set
            method = methods.Basic.Return(
                reply_code=312, reply_text="NO_ROUTE", exchange="ex", routing_key="calc"
            )
            properties = {"headers": headers} if headers is not None else {}
            return TxMessage(method, Content(b"call", properties=properties))

        message = returned({"thriftClientName": "Clientcalc"})
        delegate.basic_return_(None, message)  # type: ignore[arg-type]
        delegate.basic_return_(None, returned(None))  # type: ignore[arg-type]
        queue = outcome(client.thriftBasicReturnQueue("Clientcalc"))
        self.assertIs(outcome(queue.get()), message)
        self.assertEqual(list(client.thriftBasicReturnQueues), ["Clientcalc"])

    def test_transport_message(self) -> None:
        """
        L{TwistedAMQPTransport} publishes each flushed message with txAMQP's
        header, reply-to and C{mandatory}.
        """
        from txamqp_next.contrib.thrift.transport import TwistedAMQPTransport

        broker = open_broker()
        channel = broker.open_channel()
        transport = TwistedAMQPTransport(
            channel,
            "services",
            "calc",
            clientName="Clientcalc",
            replyTo="rq",
            replyToField="reply to",
        )
        transport.write(b"thrift ")
        transport.write(b"bytes")
        transport.flush()
        frames = broker.frames_sent()
        [publish] = [item for kind, _, item in frames if kind == _frames.FRAME_METHOD]
        [(_, _, props)] = [item for kind, _, item in frames if kind == _frames.FRAME_HEADER]
        body = b"".join(item for kind, _, item in frames if kind == _frames.FRAME_BODY)
        self.assertEqual(
            (publish.exchange, publish.routing_key, publish.mandatory), ("services", "calc", True)
        )
        self.assertEqual(
            (props.reply_to, props.headers), ("rq", {"thriftClientName": "Clientcalc"})
        )
        self.assertEqual(body, b"thrift bytes")


class ServiceTests(SynchronousTestCase):
    """
    L{ThriftServerService} against a fake broker on a clock.
    """

    def setUp(self) -> None:
        from twisted.internet.task import Clock

        from txamqp_next._params import ConnectionParameters, Credentials
        from txamqp_next.endpoint import Broker as BrokerEntry
        from txamqp_next.testing import MemoryBroker

        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        params = ConnectionParameters(credentials=Credentials(), heartbeat=0)
        self.service = ThriftServerService(
            self.clock,
            [BrokerEntry(params, self.broker, "fake")],
            "calc",
            processor(Handler()),
            exchange="ex",
            responses_exchange="replies",
            retry_policy=lambda attempt: 1.0,
        )

    def names(self) -> list[str]:
        return [
            name for _, name in self.broker.current.names() if not name.startswith("connection.")
        ]

    def test_serves_and_reconnects(self) -> None:
        """
        The service declares the exchanges, the durable queue and its
        binding, sets prefetch and confirm mode, and consumes; after a lost
        connection the same server serves again on the next one; stopping
        cancels, closes and stops reconnecting.
        """
        self.service.startService()
        self.broker.flush()
        self.assertEqual(
            self.names(),
            [
                "channel.open",
                "exchange.declare",
                "queue.declare",
                "queue.bind",
                "exchange.declare",
                "basic.qos",
                "confirm.select",
                "basic.consume",
            ],
        )
        [declare] = [m for _, m in self.broker.current.methods if m.NAME == "queue.declare"]
        self.assertEqual((declare.durable, declare.auto_delete), (True, False))
        server = self.service.server
        self.assertIsNotNone(server)
        self.successResultOf(self.service.when_serving())
        self.broker.current.lose()
        self.broker.flush()
        self.clock.advance(1.0)
        self.broker.flush()
        self.assertIn("basic.consume", self.names())
        self.assertIs(self.service.server, server)
        self.successResultOf(self.service.when_serving())

        stopping = self.service.stopService()
        self.broker.flush()
        self.assertEqual(self.names()[-2:], ["basic.cancel", "channel.close"])
        self.assertIn((0, "connection.close"), self.broker.current.names())
        self.assertIsNone(outcome(stopping))
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.assertEqual(self.broker.attempts, attempts)

    def test_transient_queue(self) -> None:
        """
        With C{durable=False} the queue is auto-deleted, as txAMQP's servers
        declare it.
        """
        self.service.durable = False
        self.service.startService()
        self.broker.flush()
        [declare] = [m for _, m in self.broker.current.methods if m.NAME == "queue.declare"]
        self.assertEqual((declare.durable, declare.auto_delete), (False, True))

    def test_queue_arguments(self) -> None:
        """
        The queue is declared with the service's C{queue_arguments} (a
        quorum queue, for calls that survive a node).
        """
        self.service.queue_arguments = {"x-queue-type": "quorum"}
        self.service.startService()
        self.broker.flush()
        [declare] = [m for _, m in self.broker.current.methods if m.NAME == "queue.declare"]
        self.assertEqual((declare.durable, declare.arguments), (True, {"x-queue-type": "quorum"}))

    def test_refused_setup_stops(self) -> None:
        """
        A queue that exists with other settings stops the service with one
        log line instead of retrying for ever.
        """
        from txamqp_next.errors import PreconditionFailed

        self.broker.declare_queue("calc", arguments={"x-max-length": 1})
        self.service.startService()
        self.broker.flush()
        self.assertIsInstance(self.service.failed, PreconditionFailed)
        self.assertFalse(self.service.running)
        self.failureResultOf(self.service.when_serving(), PreconditionFailed)
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.assertEqual(self.broker.attempts, attempts)


class RecoveringClientTests(SynchronousTestCase):
    """
    A L{ThriftClient} on a L{txamqp_next.RecoveringConnection}, against a
    fake broker on a clock.
    """

    def setUp(self) -> None:
        from twisted.internet.task import Clock

        from txamqp_next._params import ConnectionParameters, Credentials
        from txamqp_next.endpoint import Broker as BrokerEntry
        from txamqp_next.recovery import RecoveringConnection
        from txamqp_next.testing import MemoryBroker

        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        params = ConnectionParameters(credentials=Credentials(), heartbeat=0)
        self.connection = RecoveringConnection(
            self.clock,
            [BrokerEntry(params, self.broker, "fake")],
            retry_policy=lambda attempt: 1.0,
        )
        self.connection.start()
        self.broker.flush()
        opening = open_client(self.connection, "calc", calculator().Client, timeout=10)
        self.broker.flush()
        self.client: ThriftClient[Any] = self.successResultOf(opening)

    def reply(self, seqid: int, result: int) -> None:
        body = thrift_message(
            "add", TMessageType.REPLY, seqid, calculator().add_result(success=result)
        )
        self.broker.publish(self.client.reply_queue, body)
        self.broker.flush()

    def test_reply_queue_outlives_connection(self) -> None:
        """
        The reply queue is named by the client and not exclusive, expiring
        once unused, so replies wait in it while the connection is down.
        """
        [declare] = [
            m for _, m in self.broker.current.methods if m.NAME == "queue.declare" and m.queue
        ]
        self.assertTrue(declare.queue.startswith("thrift.reply."))
        self.assertEqual((declare.exclusive, declare.auto_delete), (False, False))
        self.assertEqual(declare.arguments, {"x-expires": 300_000})

    def test_unbound_fails_fast(self) -> None:
        """
        A call made while connected with no server bound fails at once with
        L{ServiceUnavailable}.
        """
        call = self.client.stub.add(1, 2)
        self.broker.flush()
        self.failureResultOf(call, ServiceUnavailable)

    def test_call_made_while_down(self) -> None:
        """
        A call made while the connection is down goes out on the next one;
        returned because no server is bound yet (the servers are recovering
        too), it is sent again every half second until one is, then
        answered.
        """
        self.broker.current.lose()
        self.broker.flush()
        call = self.client.stub.add(1, 2)
        self.clock.advance(1.0)
        self.broker.flush()
        self.assertEqual(len(self.broker.returned), 1)
        self.assertNoResult(call)
        self.clock.advance(0.5)
        self.broker.flush()
        self.assertEqual(len(self.broker.returned), 2)
        self.broker.declare_queue("calc")
        self.broker.bind("calc", "thrift", "calc")
        self.clock.advance(0.5)
        self.broker.flush()
        self.assertEqual([p.queues for p in self.broker.published], [[], [], ["calc"]])
        sent = self.broker.published[-1]
        self.assertEqual(sent.properties.reply_to, self.client.reply_queue)
        self.reply(1, 3)
        self.assertEqual(self.successResultOf(call), 3)

    def test_call_made_while_down_times_out(self) -> None:
        """
        A held call that no server takes fails with L{ServiceUnavailable}
        near its deadline, not later than its timeout.
        """
        self.broker.current.lose()
        self.broker.flush()
        call = self.client.stub.add(1, 2)
        self.clock.advance(1.0)
        self.broker.flush()
        for _ in range(18):
            self.clock.advance(0.5)
            self.broker.flush()
        self.failureResultOf(call, ServiceUnavailable)
