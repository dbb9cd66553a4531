# -*- test-case-name: tests.test_large -*-
"""
Large messages: outbound bodies split at C{frame_max} into a single buffer
without a copy per frame, inbound bodies handed on as views of the reads and
joined once.  Memory is measured with C{tracemalloc}, which sees every Python
allocation (bodies included) and is independent of the allocator.
"""

from __future__ import annotations

import os
import tracemalloc

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import Broker, open_channel, open_connection
from tests.test_backpressure import ThrottlingTransport
from txamqp_next import _frames
from txamqp_next.errors import RemoteProtocolError
from txamqp_next.message import Message

MiB = 1 << 20


class OutboundTests(SynchronousTestCase):
    """
    A body over several frames.
    """

    def test_split_at_frame_max(self) -> None:
        """
        A body of 100 000 bytes with frame_max 4096 goes out as one byte
        string: the method, the header and body frames of at most 4096
        bytes whose payloads are the body, in order.
        """
        conn, factory, parser = open_connection(tune={"frame_max": 4096})
        ch = open_channel(conn, factory, parser)
        body = os.urandom(100_000)
        conn.publish(ch, body, routing_key="q")
        [chunk] = conn.chunks_to_send()
        frames = parser.feed(chunk)
        kinds = [kind for kind, _, _ in frames]
        self.assertEqual(kinds[:2], [_frames.FRAME_METHOD, _frames.FRAME_HEADER])
        payloads = [item for kind, _, item in frames if kind == _frames.FRAME_BODY]
        self.assertEqual(len(payloads), -(-100_000 // 4088))
        self.assertTrue(all(len(p) <= 4096 - _frames.FRAME_OVERHEAD for p in payloads))
        self.assertEqual(b"".join(payloads), body)

    def test_one_frame_body_unchanged(self) -> None:
        """
        A body that fits a frame goes out as method, header and body frames
        by the small-message path: the method frame stays a chunk of its
        own and, without properties, so does the body, uncopied.
        """
        conn, factory, parser = open_connection()
        ch = open_channel(conn, factory, parser)
        body = b"small"
        conn.publish(ch, body, routing_key="q")
        chunks = conn.chunks_to_send()
        self.assertEqual(len(chunks), 4)
        self.assertIs(chunks[2], body)
        self.assertEqual([kind for kind, _, _ in parser.feed(chunks[0])], [_frames.FRAME_METHOD])
        frames = parser.feed(b"".join(chunks[1:]))
        self.assertEqual(
            [kind for kind, _, _ in frames], [_frames.FRAME_HEADER, _frames.FRAME_BODY]
        )
        self.assertEqual(frames[1][2], b"small")

    def test_publish_copies_body_once(self) -> None:
        """
        Publishing 16 MiB allocates about one copy of the body (the frames),
        not one per frame plus a join: the peak of new allocations stays
        under 1.5 times the body.
        """
        transport = ThrottlingTransport(high_water=1 << 40)
        broker = Broker(transport=transport)
        broker.handshake()
        ch = broker.open_channel()
        transport.keep = False
        body = bytes(16 * MiB)
        tracemalloc.start()
        try:
            ch.basic_publish(routing_key="q", body=body)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertGreater(transport.buffered, 16 * MiB)
        self.assertLess(peak, 1.5 * 16 * MiB)


class InboundTests(SynchronousTestCase):
    """
    A body arriving in many frames and many reads.
    """

    def test_body_copied_once(self) -> None:
        """
        Body frames are handed on as views of the received reads and joined
        once: a 16 MiB delivery fed in 64 KiB reads arrives intact, as
        C{bytes}, and allocates under 1.2 times the body (a body grown by
        repeated concatenation would need far more).  The same delivery through a frame reader that
        copies each frame allocates over 1.9 times the body, so the
        measure tells the two apart.
        """
        self.assertLess(self.peak_for(16 * MiB, views=True), 1.2 * 16 * MiB)
        self.assertGreater(self.peak_for(16 * MiB, views=False), 1.9 * 16 * MiB)

    def peak_for(self, size: int, views: bool) -> int:
        """
        The peak of new allocations while a delivery of C{size} bytes is
        fed in 64 KiB reads, with a frame reader made with C{views}.
        """
        broker = Broker()
        broker.handshake()
        core = broker.client.core
        core._reader = _frames.FrameReader(core._reader.frame_max, views=views)
        ch = broker.open_channel()
        got: list[Message] = []
        ch.basic_consume(queue="q", consumer_tag="tag", callback=got.append)
        broker.reply("basic.consume-ok", consumer_tag="tag")
        body = os.urandom(size)
        data = broker.frames.content(
            1, "basic.deliver", body, consumer_tag="tag", delivery_tag=1,
            exchange="", routing_key="q",
        )  # fmt: skip
        reads = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        del data
        tracemalloc.start()
        try:
            while reads:
                broker.send(reads.pop(0))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        [message] = got
        self.assertEqual(message.body, body)
        self.assertIs(type(message.body), bytes)
        return peak


class FrameViewTests(SynchronousTestCase):
    """
    A frame reader made with C{views=True} hands body frames on uncopied,
    whatever the reads.
    """

    def stream(self) -> tuple[bytes, list[tuple[int, int, bytes]]]:
        frames = [
            (_frames.FRAME_METHOD, 1, b"\x00\x3c\x00\x3c" + b"m" * 20),
            (_frames.FRAME_BODY, 1, os.urandom(10_000)),
            (_frames.FRAME_BODY, 1, os.urandom(100)),
            (_frames.FRAME_BODY, 1, os.urandom(5_000)),
            (_frames.FRAME_HEADER, 1, b"h" * 14),
        ]
        return b"".join(_frames.frame(*f) for f in frames), frames

    @staticmethod
    def flat(payload: object) -> bytes:
        if isinstance(payload, tuple):
            return b"".join(payload)
        assert isinstance(payload, (bytes, memoryview))
        return bytes(payload)

    def test_any_reads(self) -> None:
        """
        The stream cut into reads of every size from 1 to 700 bytes and
        at every offset gives the same frames, body frames as bytes, views
        or tuples of pieces, other frames as bytes.
        """
        data, expected = self.stream()
        steps = range(1, 700, 37)
        cuts = [[data[i : i + step] for i in range(0, len(data), step)] for step in steps]
        cuts += [[data[:offset], data[offset:]] for offset in range(1, len(data), 97)]
        for reads in cuts:
            reader = _frames.FrameReader(0, views=True)
            got = []
            for read in reads:
                reader.feed(read)
                got += reader.read_frames()
            self.assertEqual(
                [(kind, channel, self.flat(payload)) for kind, channel, payload in got], expected
            )
            for kind, _, payload in got:
                if kind != _frames.FRAME_BODY:
                    self.assertIs(type(payload), bytes)
            self.assertEqual(reader.buffered, 0)

    def test_bad_end_after_good_frames(self) -> None:
        """
        A body frame that straddles reads and ends in a bad octet is
        reported after the good frames before it, by the next read.
        """
        good = _frames.frame(_frames.FRAME_METHOD, 1, b"\x00\x3c\x00\x3c")
        bad = bytearray(_frames.frame(_frames.FRAME_BODY, 1, b"b" * 9000))
        bad[-1] = 0x00
        reader = _frames.FrameReader(0, views=True)
        reader.feed(good + bytes(bad[:5000]))
        self.assertEqual(len(reader.read_frames()), 1)
        reader.feed(bytes(bad[5000:]))
        error = self.assertRaises(RemoteProtocolError, reader.read_frames)
        self.assertIn("frame end octet is 0x00", str(error))
