"""URL blocklist: domains and URL patterns read from data files (or given inline) -> a reject reason.

The filter stage calls :func:`blocklist_reason` and rejects rows where it is not null.
File format: one entry per line; blank lines and ``#`` comments are ignored. A domain entry
blocks that host and every subdomain (``example.com`` blocks ``www.example.com``); a pattern
entry is a regular expression searched in the normalised URL.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict

# Hosts are compared at up to this many labels below the entry (a.b.c.d.example.com).
_MAX_SUBDOMAIN_DEPTH = 5


class BlocklistConfig(BaseModel):
    """Which URLs to block; empty (the default) blocks nothing."""

    model_config = ConfigDict(extra="forbid")

    domains_file: str | None = None
    """File of blocked domains, one per line (subdomains are blocked too)."""
    patterns_file: str | None = None
    """File of regular expressions, one per line, searched in the normalised URL."""
    domains: list[str] = []
    """Blocked domains given inline (added to ``domains_file``)."""
    patterns: list[str] = []
    """URL regular expressions given inline (added to ``patterns_file``)."""


def _read_lines(path: str | None) -> tuple[str, ...]:
    if not path:
        return ()
    return _read_file(str(Path(path).resolve()))


@lru_cache(maxsize=16)
def _read_file(path: str) -> tuple[str, ...]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return tuple(out)


def blocked_domains(cfg: BlocklistConfig) -> list[str]:
    entries = [*_read_lines(cfg.domains_file), *cfg.domains]
    cleaned = {d.strip().lower().strip(".").removeprefix("*.") for d in entries}
    return sorted(d for d in cleaned if d)


def blocked_patterns(cfg: BlocklistConfig) -> list[str]:
    pats = [*_read_lines(cfg.patterns_file), *cfg.patterns]
    for p in pats:
        re.compile(p)  # fail early, with the pattern in the message, on an invalid regex
    return pats


def blocklist_reason(df: pl.DataFrame, cfg: BlocklistConfig) -> pl.Expr:
    """Expression giving ``"blocklist:domain"``, ``"blocklist:pattern"`` or null per row of ``df``.

    Uses the ``url`` column (and ``domain`` when present); rows without a URL are never blocked.
    """
    domains = blocked_domains(cfg)
    patterns = blocked_patterns(cfg)
    if "url" not in df.columns or (not domains and not patterns):
        return pl.lit(None, dtype=pl.String)
    url = pl.col("url").cast(pl.String)
    host = url.str.extract(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)", 1).str.to_lowercase()
    host = host.str.strip_chars_end(".")
    dom_hit = pl.lit(False)
    if domains:
        hits = [host.is_in(domains)]
        for k in range(1, _MAX_SUBDOMAIN_DEPTH + 1):
            hits.append(
                host.str.replace(rf"^(?:[^.]+\.){{{k}}}", "").is_in(domains) & host.str.count_matches(r"\.").ge(k)
            )
        if "domain" in df.columns:
            hits.append(pl.col("domain").is_in(domains))
        dom_hit = pl.any_horizontal(hits).fill_null(False)
    pat_hit = pl.lit(False)
    if patterns:
        combined = "|".join(f"(?:{p})" for p in patterns)
        pat_hit = url.str.contains(combined).fill_null(False)
    return (
        pl.when(dom_hit)
        .then(pl.lit("blocklist:domain"))
        .when(pat_hit)
        .then(pl.lit("blocklist:pattern"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
