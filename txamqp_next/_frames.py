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
    "content_frames",
    "message_frames",
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
_END = bytes([FRAME_END])
HEARTBEAT: Final = _ENVELOPE.pack(FRAME_HEARTBEAT, 0, 0) + _END


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by L{FrameReader.next_frame} when no whole frame is buffered yet.
NEED_DATA: Final = _NeedData()

Frame = tuple[int, int, bytes]


class FrameReader:
    """
    Cut a byte stream into frames.

    @ivar frame_max: the largest frame accepted, envelope included; C{0}
        means no limit.  The connection lowers it once C{tune} has settled it.
    """

    def __init__(self, frame_max: int = 131072) -> None:
        self.frame_max = frame_max
        self._buffer = bytearray()
        self._offset = 0

    def feed(self, data: bytes) -> None:
        """
        Add received bytes.
        """
        if self._offset and self._offset >= len(self._buffer) // 2:
            del self._buffer[: self._offset]
            self._offset = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """
        How many received bytes are not yet part of a returned frame.
        """
        return len(self._buffer) - self._offset

    def peek(self, size: int) -> bytes:
        """
        Up to C{size} buffered bytes, without consuming them.
        """
        return bytes(self._buffer[self._offset : self._offset + size])

    def next_frame(self) -> Frame | _NeedData:
        """
        The next whole frame as C{(type, channel, payload)}, or L{NEED_DATA}.

        @raise RemoteProtocolError: (501) an unknown frame type, a frame over
            C{frame_max}, a bad frame-end octet, or a heartbeat that is not on
            channel 0 or has a payload.
        """
        buf = self._buffer
        offset = self._offset
        available = len(buf) - offset
        if available < 7:
            return NEED_DATA
        frame_type, channel, size = _ENVELOPE.unpack_from(buf, offset)
        if frame_type not in _FRAME_TYPES:
            raise RemoteProtocolError(FRAME_ERROR, f"unknown frame type {frame_type}", channel)
        if self.frame_max and size + FRAME_OVERHEAD > self.frame_max:
            raise RemoteProtocolError(
                FRAME_ERROR,
                f"frame of {size + FRAME_OVERHEAD} bytes exceeds frame_max {self.frame_max}",
                channel,
            )
        end = offset + 7 + size
        if len(buf) <= end:
            return NEED_DATA
        if buf[end] != FRAME_END:
            raise RemoteProtocolError(
                FRAME_ERROR, f"frame end octet is {buf[end]:#04x}, not 0xce", channel
            )
        if frame_type == FRAME_HEARTBEAT and (channel or size):
            raise RemoteProtocolError(
                FRAME_ERROR, "heartbeat frame must be on channel 0 and empty", channel
            )
        payload = bytes(buf[offset + 7 : end])
        self._offset = end + 1
        if self._offset == len(buf):
            buf.clear()
            self._offset = 0
        return frame_type, channel, payload


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
    size = len(body)
    chunk = frame_max - FRAME_OVERHEAD if frame_max else size or 1
    if size <= chunk:
        if size:
            frames.append(_ENVELOPE.pack(FRAME_BODY, channel, size) + bytes(body) + _END)
        return frames
    view = memoryview(body)
    for start in range(0, size, chunk):
        part = view[start : start + chunk]
        frames.append(_ENVELOPE.pack(FRAME_BODY, channel, len(part)))
        frames.append(bytes(part))
        frames.append(_END)
    return frames


def message_frames(
    channel: int, method_payload: bytes, header: bytes, body: bytes, frame_max: int
) -> list[bytes]:
    """
    Every frame of a method that carries content (C{basic.publish}).

    A body that fits one frame gives the method, header and body frames
    as they are.  A larger body gives a single byte string holding every
    frame: the body is copied once, straight from slices of it, and a
    transport handed one string need not copy it again to join pieces.

    @param method_payload: the encoded method (see C{Method.encode}).
    """
    frames = [method_frame(channel, method_payload)]
    size = len(body)
    chunk = frame_max - FRAME_OVERHEAD if frame_max else size or 1
    if size <= chunk:
        frames += content_frames(channel, header, body, frame_max)
        return frames
    pack = _ENVELOPE.pack
    pieces: list[bytes | memoryview] = [
        frames[0],
        pack(FRAME_HEADER, channel, len(header)),
        header,
        _END,
    ]
    view = memoryview(body)
    for start in range(0, size, chunk):
        part = view[start : start + chunk]
        pieces += (pack(FRAME_BODY, channel, len(part)), part, _END)
    return [b"".join(pieces)]
