"""Stable document ids: a hash of where the document came from, never of run order."""

from __future__ import annotations

import polars as pl
import xxhash


def doc_id(path: str, locator: str | int | None = None) -> str:
    """Return a 16-hex-digit id for the document at ``path`` (+ ``locator`` inside a container).

    ``path`` is the display path (input root's name + path below it), so the id does not depend
    on where the checkout lives.
    """
    key = path if locator is None else f"{path}#{locator}"
    return xxhash.xxh3_64_hexdigest(key.encode("utf-8", "surrogatepass"))


def stable_rank_key(ids: pl.Series, seed: int) -> pl.Series:
    """A seeded 64-bit hash per id that, unlike ``Expr.hash``, is the same across polars versions."""
    prefix = f"{seed}:".encode()
    return pl.Series(ids.name, [xxhash.xxh3_64_intdigest(prefix + i.encode()) for i in ids.to_list()], dtype=pl.UInt64)
