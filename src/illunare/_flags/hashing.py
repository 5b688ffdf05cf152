"""Stable bucketing: MurmurHash3 (x86, 32-bit) as Unleash uses it, identical in every process.

The ``mmh3`` package (extra ``mmh3``) computes it in C when installed, about
ten times faster than the pure-Python ``python_murmur3_32``; both give the same
numbers, so processes with and without it agree on every bucket.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["VARIANT_SEED", "bucket", "murmur3_32", "python_murmur3_32"]

#: The seed Unleash uses when it hashes a context for variant selection.
VARIANT_SEED = 86028157

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_MASK = 0xFFFFFFFF


def python_murmur3_32(text: str, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of the UTF-8 bytes of ``text``: never Python's salted ``hash()``."""
    data = text.encode("utf-8")
    length = len(data)
    h = seed & _MASK
    end = length & ~3
    for index in range(0, end, 4):
        k = int.from_bytes(data[index : index + 4], "little")
        k = (k * _C1) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        k = (k * _C2) & _MASK
        h ^= k
        h = ((h << 13) | (h >> 19)) & _MASK
        h = (h * 5 + 0xE6546B64) & _MASK
    tail = data[end:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * _C1) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        k = (k * _C2) & _MASK
        h ^= k
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def _python_hash(text: str, seed: int, signed: bool) -> int:
    """``python_murmur3_32`` with the signature of ``mmh3.hash`` (always unsigned)."""
    return python_murmur3_32(text, seed)


def _fastest() -> Callable[[str, int, bool], int]:
    try:
        import mmh3  # noqa: PLC0415  # optional: chosen once, here
    except ImportError:
        return _python_hash
    return mmh3.hash


# Called with mmh3.hash's positional arguments: the fastest call there is.
_hash = _fastest()


def murmur3_32(text: str, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of the UTF-8 bytes of ``text`` (by ``mmh3`` when installed)."""
    return _hash(text, seed, False)


def bucket(group: str, key: str, buckets: int = 100, seed: int = 0) -> int:
    """Unleash's normalised hash of ``"group:key"``: an int in 1..buckets."""
    return _hash(f"{group}:{key}", seed, False) % buckets + 1
