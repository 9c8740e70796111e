"""URL normalisation and registered domains, offline.

The registered domain ("eTLD+1", e.g. ``bbc.co.uk`` for ``news.bbc.co.uk``; private suffixes
such as ``github.io`` count, so each user site is its own domain) comes from ``tldextract`` with
its bundled public-suffix snapshot: ``suffix_list_urls=()`` means it never fetches the live
list, and ``cache_dir=None`` means it writes nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": "80", "https": "443", "ftp": "21"}
_TRACKING_RE = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid|_ga)$", re.I)
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):(?!\d+(?:/|$))")
_SAFE_PATH = "/:@!$&'()*+,;=-._~%"
_SAFE_QUERY = "/:@!$&'()*+,;=?-._~%"


@lru_cache(maxsize=1)
def _extractor():
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


def normalize_url(url: str | None) -> str | None:
    """Canonical form of a web URL, or None when it is empty or has no host.

    Non-web schemes (``file:``, ``urn:`` ...) are returned unchanged.
    Lower-cased scheme and host, IDNA host, default port dropped, empty path -> "/", dot
    segments resolved, percent-encoding normalised, fragment and tracking parameters
    (``utm_*``, ``fbclid``, ``gclid``) removed. Query order is kept: it can matter to the server.
    """
    if not url:
        return None
    url = url.strip().strip("<>").strip()
    if not url:
        return None
    m = _SCHEME_RE.match(url)
    if m and m.group(1).lower() not in _DEFAULT_PORTS:
        return url  # file:, urn:, mailto: ... are kept as they are
    if not m and not url.startswith("//"):
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    scheme = (parts.scheme or "http").lower()
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = host.lower()
    netloc = host
    if port is not None and str(port) != _DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{port}"
    path = _resolve_dots(quote(unquote(parts.path), safe=_SAFE_PATH)) or "/"
    query = "&".join(q for q in parts.query.split("&") if q and not _TRACKING_RE.match(q.split("=", 1)[0]))
    query = quote(unquote(query), safe=_SAFE_QUERY) if query else ""
    return urlunsplit((scheme, netloc, path, query, ""))


def _resolve_dots(path: str) -> str:
    if "." not in path:
        return path
    out: list[str] = []
    segs = path.split("/")
    for seg in segs[1:] if path.startswith("/") else segs:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    res = "/".join(out)
    if path.startswith("/"):
        res = "/" + res
    if segs[-1] in (".", "..") and not res.endswith("/"):
        res += "/"
    return res


def host_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "://" in url else "http://" + url).hostname
    except ValueError:
        return None
    return host.rstrip(".").lower() if host else None


@lru_cache(maxsize=65536)
def _domain_of_host(host: str) -> str | None:
    if re.fullmatch(r"[\d.]+|\[?[0-9a-f:]+\]?", host):
        return host  # an IP address is its own "domain"
    ext = _extractor()(host)
    if ext.domain and ext.suffix:
        return f"{ext.domain}.{ext.suffix}"
    # No public-suffix rule matches (a reserved name such as .example, .test, .localhost, .invalid, or an
    # unknown TLD): the list's default rule "*" makes the last label the suffix, so a.example and b.example
    # are two domains, not one called "example".
    labels = [part for part in host.split(".") if part]
    return ".".join(labels[-2:]) or None


def registered_domain(url: str | None) -> str | None:
    """Registered domain (eTLD+1) of a URL, e.g. ``https://news.bbc.co.uk/x`` -> ``bbc.co.uk``."""
    if url and (m := _SCHEME_RE.match(url.strip())) and m.group(1).lower() not in _DEFAULT_PORTS:
        return None
    host = host_of(url)
    return _domain_of_host(host) if host else None
