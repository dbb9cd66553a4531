# -*- test-case-name: tests.test_frames -*-
"""
The AMQP frame envelope, sans I/O.

A frame is C{type:octet channel:short size:long payload frame-end:octet}.
L{FrameReader} takes bytes as they arrive and hands back whole frames;
short input is not an error, it answers L{NEED_DATA}.  The encoders build
whole frames, splitting content bodies at the negotiated C{frame_max}.
"""

from __future__ import annotations

import struct
from typing import Final

from txamqp_next.errors import FRAME_ERROR, RemoteProtocolError

__all__ = [
    "FRAME_BODY",
    "FRAME_END",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "HEARTBEAT",
    "NEED_DATA",
    "FrameReader",
    "body_frames",
    "content_frames",
    "frame",
    "joined_frames",
    "method_frame",
]

FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_END: Final = 0xCE
_FRAME_TYPES = frozenset({FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT})

#: The overhead of one frame: 7 header bytes and the end octet.
FRAME_OVERHEAD: Final = 8

_ENVELOPE = struct.Struct(">BHI")
_unpack_envelope = _ENVELOPE.unpack_from
_END = bytes([FRAME_END])
HEARTBEAT: Final = _ENVELOPE.pack(FRAME_HEARTBEAT, 0, 0) + _END


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by L{FrameReader.next_frame} when no whole frame is buffered yet.
NEED_DATA: Final = _NeedData()

Frame = tuple[int, int, bytes]

#: A body frame's payload from a L{FrameReader} made with C{views=True}:
#: bytes, a view of a received chunk, or, for a frame that straddles
#: chunks, a tuple of such pieces.  Whoever collects a body joins the pieces
#: of all its frames once.
BodyPayload = bytes | memoryview | tuple["bytes | memoryview", ...]

# body frames at least this large are handed out as views of the received
# chunk (with views=True): copying them would be a copy more per byte
_VIEW_MIN = 4096


class FrameReader:
    """
    Cut a byte stream into frames.

    Received chunks are kept as they come (no copy).  Frames are sliced
    straight out of the chunk they lie in; only a frame that straddles
    chunks makes the reader join the pieces, and only once enough bytes for
    the whole frame have arrived, so each byte is copied a bounded number of
    times however the stream is cut.  A frame header claiming more than
    C{frame_max} is refused as soon as its 7 bytes are in, before its
    payload is buffered.

    With C{views=True}, body frames are not copied at all: a body frame of
    at least 4 KiB within one chunk comes as a C{memoryview} of it, and one
    that straddles chunks as a tuple of pieces (see L{BodyPayload}), so a
    large message is copied once, when its collector joins the pieces.

    @ivar frame_max: the largest frame accepted, envelope included; C{0}
        means no limit.  The connection lowers it once C{tune} has settled it.
    """

    def __init__(self, frame_max: int = 131072, views: bool = False) -> None:
        self.frame_max = frame_max
        self._views = views
        # the chunk frames are cut from, and where the next one starts
        self._data = b""
        self._pos = 0
        # chunks received after _data, not yet joined to it
        self._parts: list[bytes] = []
        self._parts_size = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """
        Add received bytes.
        """
        if type(data) is not bytes:
            data = bytes(data)
        if not data:
            return
        if self._parts or self._pos < len(self._data):
            self._parts.append(data)
            self._parts_size += len(data)
        else:
            self._data = data
            self._pos = 0

    @property
    def buffered(self) -> int:
        """
        How many received bytes are not yet part of a returned frame.
        """
        return len(self._data) - self._pos + self._parts_size

    def peek(self, size: int) -> bytes:
        """
        Up to C{size} buffered bytes, without consuming them.
        """
        if len(self._data) - self._pos < size and self._parts:
            self._join()
        return self._data[self._pos : self._pos + size]

    def _join(self) -> None:
        """
        Make C{_data} hold everything buffered.
        """
        self._data = b"".join([self._data[self._pos :], *self._parts])
        self._pos = 0
        self._parts = []
        self._parts_size = 0

    def next_frame(self) -> Frame | _NeedData:
        """
        The next whole frame as C{(type, channel, payload)}, or L{NEED_DATA}.

        @raise RemoteProtocolError: (501) an unknown frame type, a frame over
            C{frame_max}, a bad frame-end octet, or a heartbeat that is not on
            channel 0 or has a payload.
        """
        frames = self.read_frames(1)
        return frames[0] if frames else NEED_DATA

    def read_frames(self, limit: int = 0) -> list[Frame]:
        """
        The whole frames buffered, in order, up to C{limit} of them (C{0}:
        all); an empty list when none is.

        A malformed frame after some good ones is reported by the next call:
        the good ones come back first.

        @raise RemoteProtocolError: as for L{next_frame}, when the first
            frame buffered is malformed.
        """
        frames: list[Frame] = []
        append = frames.append
        data = self._data
        pos = self._pos
        n = len(data)
        # the largest payload allowed
        most = self.frame_max - FRAME_OVERHEAD if self.frame_max else 0xFFFFFFFF
        unpack = _unpack_envelope
        while True:
            if n - pos >= 7:
                frame_type, channel, size = unpack(data, pos)
                end = pos + 7 + size
                # the common case in one test: a whole method, header or body
                # frame (types 1 to 3) within frame_max, ending in 0xce
                if end < n and size <= most and data[end] == 0xCE and 0 < frame_type < 4:
                    if frame_type == 3 and size >= _VIEW_MIN and self._views:
                        append((3, channel, memoryview(data)[pos + 7 : end]))  # type: ignore[arg-type]
                    else:
                        append((frame_type, channel, data[pos + 7 : end]))
                    pos = end + 1
                    if limit and len(frames) == limit:
                        break
                    continue
                if frame_type not in _FRAME_TYPES or size > most:
                    if frames:
                        break
                    self._pos = pos
                    raise self._bad_envelope(frame_type, channel, size)
                if end < n:
                    if data[end] != FRAME_END or channel or size:
                        # a bad end octet, or a heartbeat off channel 0 or
                        # with a payload
                        if frames:
                            break
                        self._pos = pos
                        raise self._bad_frame(frame_type, channel, data[end])
                    append((frame_type, channel, b""))
                    pos = end + 1
                    if limit and len(frames) == limit:
                        break
                    continue
                needed = size + FRAME_OVERHEAD
            else:
                needed = 7
            # the next frame runs past this chunk: join the rest once the
            # whole of it (or its header) has arrived
            if n - pos + self._parts_size < needed:
                break
            if needed > 7 and frame_type == 3 and self._views:
                # a body frame: its pieces, uncopied
                pieces, index, offset = self._take_pieces(data, pos + 7, size)
                data = self._parts[index]
                if data[offset] != FRAME_END:
                    if frames:
                        break
                    self._pos = pos
                    raise self._bad_frame(frame_type, channel, data[offset])
                append((3, channel, pieces))  # type: ignore[arg-type]
                self._parts = self._parts[index + 1 :]
                self._parts_size = sum(map(len, self._parts))
                self._data = data
                pos = offset + 1
                n = len(data)
                if limit and len(frames) == limit:
                    break
                continue
            self._pos = pos
            self._join()
            data = self._data
            pos = 0
            n = len(data)
        if pos == n and pos:
            self._data = b""
            pos = 0
        self._pos = pos
        return frames

    def _take_pieces(self, data: bytes, start: int, size: int) -> tuple[BodyPayload, int, int]:
        """
        Find a body frame's C{size} payload bytes, from C{start} in C{data}
        (where its envelope ends) on into the buffered parts, and its end
        octet; consume nothing.

        @return: the payload as pieces, the index of the part holding the
            end octet, and the octet's offset in it.
        """
        pieces: list[bytes | memoryview] = []
        if start < len(data):
            pieces.append(memoryview(data)[start:])
        remaining = size - (len(data) - start)
        parts = self._parts
        index = 0
        while len(parts[index]) <= remaining:
            pieces.append(parts[index])
            remaining -= len(parts[index])
            index += 1
        if remaining:
            pieces.append(memoryview(parts[index])[:remaining])
        return tuple(pieces), index, remaining

    def _bad_envelope(self, frame_type: int, channel: int, size: int) -> RemoteProtocolError:
        if frame_type not in _FRAME_TYPES:
            return RemoteProtocolError(FRAME_ERROR, f"unknown frame type {frame_type}", channel)
        return RemoteProtocolError(
            FRAME_ERROR,
            f"frame of {size + FRAME_OVERHEAD} bytes exceeds frame_max {self.frame_max}",
            channel,
        )

    @staticmethod
    def _bad_frame(frame_type: int, channel: int, end: int) -> RemoteProtocolError:
        if end != FRAME_END:
            return RemoteProtocolError(
                FRAME_ERROR, f"frame end octet is {end:#04x}, not 0xce", channel
            )
        return RemoteProtocolError(
            FRAME_ERROR, "heartbeat frame must be on channel 0 and empty", channel
        )


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """
    One whole frame: envelope, payload and frame end.
    """
    return _ENVELOPE.pack(frame_type, channel, len(payload)) + payload + _END


def method_frame(channel: int, payload: bytes) -> bytes:
    """
    A method frame carrying an encoded method (see C{Method.encode}).
    """
    return _ENVELOPE.pack(FRAME_METHOD, channel, len(payload)) + payload + _END


def content_frames(
    channel: int, header: bytes, body: bytes | bytearray | memoryview, frame_max: int
) -> list[bytes]:
    """
    The header frame and body frames of one content.

    @param header: the content header payload (see
        C{Properties.encode_header}).
    @param body: the body; it is split so no frame exceeds C{frame_max}
        (C{0}: no limit).  An empty body sends no body frame.
    """
    frames = [_ENVELOPE.pack(FRAME_HEADER, channel, len(header)) + header + _END]
    if body:
        frames += body_frames(channel, body, frame_max)
    return frames


def body_frames(channel: int, body: bytes | bytearray | memoryview, frame_max: int) -> list[bytes]:
    """
    The body frames of one content, split so no frame exceeds C{frame_max}
    (C{0}: no limit); none for an empty body.

    A body that fits one frame becomes one byte string; a longer one is
    returned as envelope, slice and end octet, for C{writeSequence}.
    """
    size = len(body)
    chunk = frame_max - FRAME_OVERHEAD if frame_max else size
    if size <= chunk:
        if not size:
            return []
        return [b"".join((_ENVELOPE.pack(FRAME_BODY, channel, size), body, _END))]
    frames = []
    view = memoryview(body)
    for start in range(0, size, chunk):
        part = view[start : start + chunk]
        frames.append(_ENVELOPE.pack(FRAME_BODY, channel, len(part)))
        frames.append(bytes(part))
        frames.append(_END)
    return frames


def joined_frames(
    head: list[bytes], channel: int, body: bytes | bytearray | memoryview, frame_max: int
) -> bytes:
    """
    One byte string holding the frames in C{head} (a method and its content
    header) followed by C{body} split into body frames of at most
    C{frame_max}.

    For a body over several frames: the body is copied once, straight from
    slices of it, and a transport handed a single string need not copy it
    again to join pieces (Twisted's does when given several).
    """
    chunk = frame_max - FRAME_OVERHEAD
    pack = _ENVELOPE.pack
    pieces: list[bytes | memoryview] = list(head)
    view = memoryview(body)
    for start in range(0, len(body), chunk):
        part = view[start : start + chunk]
        pieces += (pack(FRAME_BODY, channel, len(part)), part, _END)
    return b"".join(pieces)
