"""Stable bucketing: MurmurHash3 (x86, 32-bit) as Unleash uses it, identical in every process."""

from __future__ import annotations

__all__ = ["VARIANT_SEED", "bucket", "murmur3_32"]

#: The seed Unleash uses when it hashes a context for variant selection.
VARIANT_SEED = 86028157

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_MASK = 0xFFFFFFFF


def murmur3_32(text: str, seed: int = 0) -> int:
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


def bucket(group: str, key: str, buckets: int = 100, seed: int = 0) -> int:
    """Unleash's normalised hash of ``"group:key"``: an int in 1..buckets."""
    return murmur3_32(f"{group}:{key}", seed) % buckets + 1
