"""Numbers in words for people: counts whose noun agrees with them."""

from __future__ import annotations

__all__ = ["count"]


def count(n, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in agreement: "1 participant", "3 participants", "0 resamples"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
