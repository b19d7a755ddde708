"""The bytes a participant's browser receives for an option image.

A bundle stores its PNGs uncompressed so that every file of one shape has one length
(explainers.bundle.render_png): a map's size must not tell its method.  Served that way a
28x28 map scaled to 224 px costs 51 kB, so a survey is about 5 MB.  Here each PNG is
recompressed (the same pixels, deflate level 9) and then padded with one private
ancillary chunk to a single length shared by every image the server holds, so the bytes
stay method-blind at about a twentieth of the traffic.  Decoders skip the padding chunk:
its type ``npAd`` is ancillary (lower-case first letter), private (lower-case second) and
safe to copy (lower-case fourth).

Only the standard library: the web process stays free of imaging libraries.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["PNG_SIGNATURE", "PAD_CHUNK", "chunks", "compact", "pad_to", "equalise"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAD_CHUNK = b"npAd"
_CHUNK_OVERHEAD = 12  # length, type, CRC


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, payload) pairs; ValueError when it is not a whole PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    out, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG chunk header")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError("truncated PNG chunk")
        payload = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind + payload) != crc:
            raise ValueError(f"PNG chunk {kind!r} fails its CRC")
        out.append((kind, payload))
        pos = end + 4
        if kind == b"IEND":
            break
    if not out or out[0][0] != b"IHDR" or out[-1][0] != b"IEND":
        raise ValueError("a PNG must start with IHDR and end with IEND")
    return out


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def compact(data: bytes) -> bytes:
    """The same PNG with its image data recompressed at deflate level 9 (one IDAT), the
    other chunks kept in order."""
    parts = chunks(data)
    pixels = zlib.decompress(b"".join(p for k, p in parts if k == b"IDAT"))
    out, idat_written = [PNG_SIGNATURE], False
    for kind, payload in parts:
        if kind == b"IDAT":
            if not idat_written:
                out.append(_chunk(b"IDAT", zlib.compress(pixels, 9)))
                idat_written = True
        elif kind != PAD_CHUNK:
            out.append(_chunk(kind, payload))
    return b"".join(out)


def pad_to(data: bytes, length: int) -> bytes:
    """``data`` (a PNG without padding) with a padding chunk before IEND making it exactly
    ``length`` bytes long."""
    room = length - len(data) - _CHUNK_OVERHEAD
    if room < 0:
        raise ValueError(f"a {len(data)}-byte PNG cannot be padded to {length} bytes")
    iend = len(data) - _CHUNK_OVERHEAD
    return data[:iend] + _chunk(PAD_CHUNK, b"\0" * room) + data[iend:]


def equalise(pngs: dict) -> tuple[dict, int]:
    """Compact every PNG and pad all to one length (the longest compacted one plus the
    padding chunk's 12 bytes, so every file carries exactly one padding chunk)."""
    small = {key: compact(data) for key, data in pngs.items()}
    length = max(len(data) for data in small.values()) + _CHUNK_OVERHEAD
    return {key: pad_to(data, length) for key, data in small.items()}, length
