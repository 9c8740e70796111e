"""Build the container files of ``sample_data/`` from the authored sources in ``sample_data/_src/``.

Run from the repository root::

    .venv/bin/python sample_data/build_sample.py          # (re)write every generated file
    .venv/bin/python sample_data/build_sample.py --check  # rebuild in memory, fail if anything differs

All text in ``_src/`` (and the hand-written files under ``code/``) is original, written for
Refinery. The outputs are byte-deterministic so they can be committed: WARC dates and record ids
are fixed (ids are UUIDv5 of the URI and record type), every gzip stream has mtime 0 and no file
name, zstd uses a fixed level, and parquet is written with fixed options.

Source format (``*.src``): records separated by a line ``%%%%``; each record is ``key: value``
header lines, a line ``---``, then the body. Body markup: blank line = paragraph break,
``## `` = subheading, ``- `` = list item. ``.src`` is used so the pipeline's readers, which
recognise files by extension, never ingest the sources themselves.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html
import io
import json
import re
import struct
import sys
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "_src"
OUTPUTS: dict[str, bytes] = {}  # relative path -> bytes, written (or checked) at the end


# --------------------------------------------------------------------------- helpers


def emit(rel: str, data: bytes) -> None:
    assert rel not in OUTPUTS, rel
    OUTPUTS[rel] = data


def gz(data: bytes) -> bytes:
    """Deterministic gzip: mtime 0, no embedded file name."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as fh:
        fh.write(data)
    return buf.getvalue()


def parse_src(path: Path) -> list[dict]:
    """Parse a ``.src`` file into records: header keys plus ``body``."""
    records = []
    for chunk in re.split(r"^%%%%[ \t]*$", path.read_text(encoding="utf-8"), flags=re.M):
        if not chunk.strip():
            continue
        parts = re.split(r"^---[ \t]*$", chunk.strip("\n"), maxsplit=1, flags=re.M)
        head, body = parts[0], parts[1] if len(parts) == 2 else None
        if body is None:
            raise ValueError(f"{path}: record without '---' separator: {chunk[:80]!r}")
        rec: dict = {}
        for line in head.splitlines():
            if line.strip():
                key, _, value = line.partition(":")
                rec[key.strip()] = value.strip()
        rec["body"] = body.strip("\n")
        records.append(rec)
    return records


def load_dir(sub: str) -> list[dict]:
    out = []
    for path in sorted((SRC / sub).glob("*.src")):
        out.extend(parse_src(path))
    return out


def blocks(body: str) -> list[tuple[str, object]]:
    """Split a body into ('p', text) / ('h2', text) / ('ul', [items]) blocks."""
    out: list[tuple[str, object]] = []
    for para in re.split(r"\n\s*\n", body.strip()):
        lines = [ln.strip() for ln in para.strip().splitlines() if ln.strip()]
        if not lines:
            continue
        if all(ln.startswith("- ") for ln in lines):
            out.append(("ul", [ln[2:] for ln in lines]))
        elif len(lines) == 1 and lines[0].startswith("## "):
            out.append(("h2", lines[0][3:]))
        else:
            out.append(("p", " ".join(lines)))
    return out


def body_html(body: str) -> str:
    parts = []
    for kind, val in blocks(body):
        if kind == "p":
            parts.append(f"<p>{html.escape(str(val), quote=False)}</p>")
        elif kind == "h2":
            parts.append(f"<h2>{html.escape(str(val), quote=False)}</h2>")
        else:
            items = "".join(f"<li>{html.escape(i, quote=False)}</li>" for i in val)  # type: ignore[union-attr]
            parts.append(f"<ul>{items}</ul>")
    return "\n".join(parts)


def body_text(title: str, body: str) -> str:
    """Plain text rendering, one block per line (as in Common Crawl WET files)."""
    lines = [title] if title else []
    for kind, val in blocks(body):
        if kind == "ul":
            lines.extend(str(i) for i in val)  # type: ignore[union-attr]
        else:
            lines.append(str(val))
    return "\n".join(lines) + "\n"


def png_bytes(width: int, height: int, seed: int) -> bytes:
    """A small, valid RGB PNG with a deterministic gradient pattern."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            row += bytes(((x * 7 + seed) % 256, (y * 5 + seed * 3) % 256, ((x ^ y) * 3) % 256))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- web sites

SITES: dict[str, dict] = {
    "kitchen": {
        "name": "The Crumb Ledger",
        "domain": "crumbledger.example",
        "tagline": "Home cooking, written down so we remember it",
        "nav": ["Recipes", "Techniques", "Pantry", "Equipment", "About", "Contact"],
        "color": "#9b3d12",
    },
    "cycling": {
        "name": "Spoke & Chain",
        "domain": "spokeandchain.example",
        "tagline": "Everyday cycling, repairs and rides",
        "nav": ["Home", "Repairs", "Commuting", "Touring", "Gear", "Forum"],
        "color": "#1f5f8b",
    },
    "astro": {
        "name": "Backyard Sky Notes",
        "domain": "backyardsky.example",
        "tagline": "Amateur astronomy from a suburban garden",
        "nav": ["Observing", "Equipment", "Sky This Month", "Beginners", "Gallery"],
        "color": "#20224a",
    },
    "history": {
        "name": "Millbrook Historical Gazette",
        "domain": "millbrookgazette.example",
        "tagline": "News and history from the Millbrook valley",
        "nav": ["News", "History", "Council", "Events", "Obituaries", "Letters"],
        "color": "#4a4a4a",
    },
    "garden": {
        "name": "Green Patch Weekly",
        "domain": "greenpatch.example",
        "tagline": "Vegetables, fruit and flowers for small gardens",
        "nav": ["Grow", "Fruit", "Flowers", "Soil", "Tools", "Calendar"],
        "color": "#2e6b2e",
    },
    "dev": {
        "name": "Terminal Velocity",
        "domain": "terminalvelocity.example",
        "tagline": "Notes on software, tools and working habits",
        "nav": ["Posts", "Git", "Python", "Shell", "Talks", "RSS"],
        "color": "#222222",
    },
    "travel": {
        "name": "Slow Roads",
        "domain": "slowroads.example",
        "tagline": "Travel by train, bus, boot and ferry",
        "nav": ["Destinations", "Trains", "Walking", "Packing", "Budget", "About"],
        "color": "#7a5c1e",
    },
    "money": {
        "name": "Penny Wise Household",
        "domain": "pennywise.example",
        "tagline": "Plain talk about everyday money",
        "nav": ["Budgeting", "Saving", "Debt", "Investing", "Tools", "Newsletter"],
        "color": "#0d6655",
    },
    "news": {
        "name": "Valley Courier",
        "domain": "valleycourier.example",
        "tagline": "Local news for Millbrook, Ashford Cross and Leaton",
        "nav": ["Local", "Council", "Business", "Sport", "Weather", "Opinion"],
        "color": "#8b1c1c",
    },
    "misc": {
        "name": "Odds and Ends",
        "domain": "oddsandends.example",
        "tagline": "A bit of everything",
        "nav": ["Home", "Archive", "About"],
        "color": "#555555",
    },
}

CSS = """
body{font-family:Georgia,serif;margin:0;color:#222;background:#fafaf7}
header.site{background:%(color)s;color:#fff;padding:12px 24px}
header.site a{color:#fff;text-decoration:none;margin-right:14px}
.cookie-banner{position:fixed;bottom:0;left:0;right:0;background:#333;color:#eee;padding:10px;font-size:13px}
.wrap{display:flex;max-width:1100px;margin:auto}
main{flex:3;padding:24px}
aside{flex:1;padding:24px;font-size:14px;border-left:1px solid #ddd}
footer{background:#eee;padding:18px;font-size:12px;color:#555}
.byline{color:#777;font-size:13px}
.share a{display:inline-block;margin-right:8px}
"""

ANALYTICS_JS = """
window.dataLayer = window.dataLayer || [];
function track(){ dataLayer.push(arguments); }
track('js', 1);
track('config', 'site-%(key)s', { anonymize: true });
document.addEventListener('DOMContentLoaded', function () {
  var b = document.querySelector('.cookie-banner button');
  if (b) { b.addEventListener('click', function () { b.parentNode.style.display = 'none'; }); }
});
"""


SUBNAV = ["Latest", "Popular", "Beginners", "In depth", "Reader questions", "Archive", "Video", "Downloads"]
SHARE_ICONS = "".join(
    f'<a href="#" class="share-{name.lower()}" aria-label="Share by {name}"><svg width="20" height="20" '
    f'viewBox="0 0 20 20" aria-hidden="true"><circle cx="10" cy="10" r="9" fill="none" stroke="currentColor"/>'
    f'<path d="{path}" fill="currentColor"/></svg><span class="sr-only">{name}</span></a>'
    for name, path in [
        ("Email", "M4 6h12v8H4z M4 6l6 5 6-5"),
        ("Print", "M6 4h8v4H6z M4 8h12v6H4z M6 12h8v4H6z"),
        ("Link", "M7 10a3 3 0 0 1 3-3h2v2h-2a1 1 0 0 0 0 2h2v2h-2a3 3 0 0 1-3-3z"),
        ("Feed", "M5 15a1 1 0 1 0 0.1 0z M5 10a5 5 0 0 1 5 5h-2a3 3 0 0 0-3-3z "
                 "M5 5a10 10 0 0 1 10 10h-2a8 8 0 0 0-8-8z"),
    ]
)


FOOTER_LINKS = " | ".join(
    f'<a href="{href}">{label}</a>'
    for href, label in [("/about/", "About"), ("/contact/", "Contact"), ("/privacy/", "Privacy"),
                        ("/terms/", "Terms"), ("/feed.xml", "RSS")]
)


def mega_menu(site: dict) -> str:
    """Drop-down navigation with a column of sub-links per section, as on most CMS themes."""
    cols = []
    for n in site["nav"]:
        slug = n.lower().replace(" ", "-").replace("&", "and")
        subs = "".join(f'<li><a href="/{slug}/{s.lower().replace(" ", "-")}/">{s}</a></li>' for s in SUBNAV)
        cols.append(f'<li class="menu-item has-children"><a href="/{slug}/">{html.escape(n)}</a>'
                    f'<ul class="sub-menu">{subs}</ul></li>')
    return '<ul class="menu">' + "".join(cols) + '<li class="menu-search"><form action="/search">' \
        '<input name="q" placeholder="Search"><button>Go</button></form></li></ul>'


def sitemap(site: dict) -> str:
    cols = []
    for n in site["nav"]:
        slug = n.lower().replace(" ", "-").replace("&", "and")
        links = " ".join(f'<a href="/{slug}/{s.lower().replace(" ", "-")}/">{s}</a>' for s in SUBNAV[:5])
        cols.append(f'<div class="footer-col"><h4>{html.escape(n)}</h4><p>{links}</p></div>')
    return '<div class="footer-sitemap">' + "".join(cols) + "</div>"


def render_page(rec: dict, site_key: str, related: list[tuple[str, str]], variant: int = 0,
                charset: str = "utf-8", meta_charset: bool = True) -> str:
    """Wrap an article body in realistic site boilerplate (nav, cookie banner, sidebar, footer)."""
    site = SITES[site_key]
    title = rec["title"]
    lang = rec.get("lang", "en")
    nav = mega_menu(site)
    rel = "\n".join(f'<li><a href="{u}">{html.escape(t)}</a></li>' for u, t in related[:5])
    date = rec.get("date", "2023-06-01")
    author = rec.get("author", "Staff writer")
    byline = f'<p class="byline">By {html.escape(author)} &middot; <time datetime="{date}">{date}</time>'
    if rec.get("updated"):
        byline += f' &middot; Updated {rec["updated"]}'
    byline += "</p>"
    tags = ", ".join(rec.get("tags", "").split(",")) if rec.get("tags") else "Uncategorised"
    ld = json.dumps({"@context": "https://schema.org", "@type": "Article", "headline": title,
                     "datePublished": date, "author": {"@type": "Person", "name": author},
                     "publisher": {"@type": "Organization", "name": site["name"]}, "inLanguage": lang},
                    ensure_ascii=False)
    meta = f'<meta charset="{charset}">\n' if meta_charset else ""
    cookie = (
        '<div class="cookie-banner">We use cookies to understand how the site is used and to remember '
        'your preferences. <a href="/privacy/">Privacy policy</a> <button>Accept all</button> '
        "<button>Reject non-essential</button></div>"
        if variant == 0
        else '<div class="cookie-banner">This site uses cookies. <button>OK</button></div>'
    )
    newsletter = (
        "<h3>Newsletter</h3><p>One email a month, no tracking pixels. "
        '<form action="/subscribe" method="post"><input name="e" placeholder="Your email address">'
        "<button>Subscribe</button></form></p>"
    )
    archive = "".join(
        f'<li><a href="/archive/{y}/">{y}</a></li>' for y in ("2024", "2023", "2022", "2021", "2020")
    )
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
{meta}<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} | {html.escape(site["name"])}</title>
<meta name="description" content="{html.escape(rec.get("summary", title))}">
<link rel="canonical" href="{rec["url"]}">
<meta property="og:title" content="{html.escape(title)}">
<meta property="og:type" content="article">
<meta property="og:url" content="{rec["url"]}">
<meta property="og:site_name" content="{html.escape(site["name"])}">
<script type="application/ld+json">{ld}</script>
<style>{CSS % {"color": site["color"]}}</style>
<script>{ANALYTICS_JS % {"key": site_key}}</script>
</head>
<body>
{cookie}
<header class="site">
<div class="logo"><a href="/">{html.escape(site["name"])}</a> <span>{html.escape(site["tagline"])}</span></div>
<nav>
{nav}
</nav>
</header>
<div class="wrap">
<main>
<nav class="breadcrumb"><a href="/">Home</a> &rsaquo; <a href="/{site["nav"][0].lower()}/">{site["nav"][0]}</a></nav>
<article>
<h1>{html.escape(title)}</h1>
{byline}
{body_html(rec["body"])}
</article>
<div class="share">Share this: {SHARE_ICONS}</div>
<p class="tags">Filed under: {html.escape(tags)}</p>
<section class="comments"><h3>Comments</h3><p>Comments are closed for this post.</p></section>
</main>
<aside>
<h3>Related posts</h3>
<ul>
{rel}
</ul>
{newsletter if variant == 0 else ""}
<h3>Archive</h3><ul>{archive}</ul>
</aside>
</div>
<footer>
{sitemap(site)}
<p>{FOOTER_LINKS}</p>
<p>&copy; {date[:4]} {html.escape(site["name"])}. All rights reserved. Powered by a small static site generator.</p>
</footer>
</body>
</html>
"""


# --------------------------------------------------------------------------- low-quality pages

SPAM_PAGES: list[dict] = []


def spam_pages() -> list[dict]:
    """Pages the Gopher quality rules must reject, written as HTML directly."""
    pages = []
    kw = ["cheap", "best", "discount", "watches", "buy", "online", "deal", "free shipping", "sale"]
    stuffed = []
    for i in range(60):
        stuffed.append(" ".join(kw[(i + j) % len(kw)] for j in range(7)))
    pages.append({
        "url": "https://best-cheap-watches-online.example/cheap-watches-best-price",
        "title": "Cheap Watches Best Watches Buy Watches Online Cheap",
        "html": "<html><head><title>cheap watches best watches buy cheap watches</title></head><body>"
        "<h1>Cheap Watches Cheap Watches Best Price Watches</h1>"
        + "".join(f"<p>{s} cheap watches best watches buy watches online cheap watches</p>" for s in stuffed)
        + "<p>cheap watches cheap watches cheap watches cheap watches cheap watches</p></body></html>",
        "why": "keyword stuffing (repetition / top n-gram rules)",
    })
    links = "".join(
        f'<li><a href="https://linkfarm.example/go/{i}">Click here {i}</a></li>' for i in range(120)
    )
    pages.append({
        "url": "https://linkfarm.example/directory/page-7",
        "title": "Directory page 7",
        "html": f"<html><head><title>Directory page 7</title></head><body><h1>Links</h1><ul>{links}</ul></body></html>",
        "why": "mostly a link list",
    })
    line = "Limited time offer: click the button below to claim your prize today!"
    pages.append({
        "url": "https://prize-claim.example/winner",
        "title": "You are a winner",
        "html": "<html><head><title>Winner</title></head><body>"
        + "".join(f"<p>{line}</p>" for _ in range(50))
        + "</body></html>",
        "why": "same line repeated 50 times (duplicate-line rules)",
    })
    pages.append({
        "url": "https://oddsandends.example/moved",
        "title": "Page moved",
        "html": "<html><head><title>Page moved</title></head><body><p>This page has moved. "
        'Please update your bookmarks and <a href="/">go to the home page</a>.</p></body></html>',
        "why": "very short page (< 50 words)",
    })
    rows = []
    for i in range(80):
        a = (i * 7919) % 10007
        b = (i * 104729) % 99991
        rows.append(f"<tr><td>#{i:03d}</td><td>{a}</td><td>{b}</td><td>{a * b % 1000003}</td>"
                    f"<td>=&gt;</td><td>${b / 100:.2f}</td><td>%%</td></tr>")
    pages.append({
        "url": "https://ticker-dump.example/feed/raw?page=3",
        "title": "### 0x3F // 77 -- ## ##",
        "html": "<html><head><title>### ###</title></head><body><p>### ... ### ... ###</p><table>"
        + "".join(rows) + "</table><p># # # ... ... ... ### 42 ### ... 17 ### ...</p></body></html>",
        "why": "mostly symbols and numbers",
    })
    pages.append({
        "url": "https://oddsandends.example/404-not-here",
        "title": "404 Not Found",
        "status": "404 Not Found",
        "html": "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
        "<p>The requested URL was not found on this server.</p></body></html>",
        "why": "HTTP 404 response",
    })
    return pages


# --------------------------------------------------------------------------- WARC


def warc_id(*parts: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '|'.join(parts))}>"


class Clock:
    """Fixed, monotonically increasing WARC dates."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def next(self) -> str:
        self.t += timedelta(seconds=37)
        return self.t.strftime("%Y-%m-%dT%H:%M:%SZ")


def chunked(data: bytes, size: int = 1500) -> bytes:
    out = bytearray()
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


# Near-duplicate recipes: (source slug, new url path, replacements, extra fields)
NEAR_DUPS = [
    # a few sentences edited
    ("sourdough-starter", "https://homebakersnotes.example/posts/starter-from-scratch", "kitchen", [
        ("five days", "six days"),
        ("I keep mine in a wide glass jar", "I keep mine in a tall jar with a loose lid"),
        ("rye flour", "wholemeal rye flour"),
    ], {"date": "2024-02-11", "author": "Guest contributor"}),
    # same text, different site boilerplate and date line (syndication)
    ("flat-tyre-roadside", "https://valleycourier.example/lifestyle/fixing-a-flat-on-the-road", "news", [],
     {"date": "2024-05-02", "author": "Syndicated from Spoke & Chain", "variant": 1}),
    # appended update paragraph and updated-date line
    ("emergency-fund", "https://pennywise.example/saving/emergency-fund-basics-updated", "money", [
        ("__APPEND__", "Update: several readers asked whether the fund should be invested. Our view has not "
         "changed. Money you may need next week belongs somewhere boring and easy to reach, and the "
         "small amount of interest you give up is the price of that certainty."),
    ], {"updated": "2024-09-30"}),
    # one paragraph reworded, title tweaked
    ("jupiter-moons", "https://backyardsky.example/beginners/watching-the-galilean-moons", "astro", [
        ("Watching the Moons of Jupiter", "Watching Jupiter's Four Bright Moons"),
        ("a pair of ordinary binoculars", "a pair of steady binoculars"),
        ("on a tripod", "mounted on a photo tripod"),
    ], {"variant": 1}),
    ("git-bisect", "https://terminalvelocity.example/posts/bisect-again", "dev", [
        ("Last Tuesday", "A few weeks ago"),
        ("about forty commits", "about sixty commits"),
    ], {"date": "2024-03-19"}),
]
# Exact duplicates: the same page bytes served under a second URL.
EXACT_DUPS = [
    ("lentil-soup", "https://crumbledger.example/amp/recipes/weeknight-lentil-soup"),
    ("compost-heap", "https://greenpatch.example/print/soil/a-compost-heap-that-works"),
    ("library-reopens", "https://valleycourier.example/local/library-reopens?utm_source=newsletter"),
    ("packing-light", "https://slowroads.example/packing/one-bag-travel/?amp=1"),
]


def build_web(articles: list[dict]) -> None:
    by_slug = {a["slug"]: a for a in articles}
    assert len(by_slug) == len(articles), "duplicate slugs"
    for a in articles:
        site = SITES[a["site"]]
        a.setdefault("url", f"https://{site['domain']}/{a['site']}/{a['slug']}/")
    by_site: dict[str, list[dict]] = {}
    for a in articles:
        by_site.setdefault(a["site"], []).append(a)

    def related(a: dict) -> list[tuple[str, str]]:
        return [(b["url"], b["title"]) for b in by_site[a["site"]] if b is not a]

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True, warc_version="1.1")
    clock = Clock(datetime(2024, 10, 3, 8, 0, 0, tzinfo=UTC))
    info = (
        b"software: refinery sample_data/build_sample.py\r\n"
        b"format: WARC File Format 1.1\r\n"
        b"description: Synthetic crawl of fictional sites, written for the Refinery demo corpus\r\n"
        b"robots: obey\r\n"
    )
    writer.write_record(writer.create_warc_record(
        "", "warcinfo", payload=io.BytesIO(info), length=len(info),
        warc_content_type="application/warc-fields",
        warc_headers_dict={"WARC-Record-ID": warc_id("warcinfo", "crawl-sample"),
                           "WARC-Date": "2024-10-03T08:00:00Z", "WARC-Filename": "crawl-sample.warc.gz"},
    ))

    payload_digests: dict[str, tuple[str, str]] = {}

    def write_response(url: str, body: bytes, ctype: str = "text/html; charset=utf-8",
                       status: str = "200 OK", chunk: bool = False, with_request: bool = False,
                       extra: list[tuple[str, str]] | None = None) -> None:
        date = clock.next()
        headers = [("Content-Type", ctype), ("Server", "nginx"),
                   ("Date", datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").strftime("%a, %d %b %Y %H:%M:%S GMT"))]
        headers += extra or []
        if chunk:
            payload = chunked(body)
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            payload = body
            headers.append(("Content-Length", str(len(body))))
        http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
        rid = warc_id("response", url)
        rec = writer.create_warc_record(
            url, "response", payload=io.BytesIO(payload), length=len(payload), http_headers=http,
            warc_headers_dict={"WARC-Record-ID": rid, "WARC-Date": date,
                               "WARC-IP-Address": "192.0.2.80"},
        )
        writer.write_record(rec)
        payload_digests[url] = (rec.rec_headers.get_header("WARC-Payload-Digest"), date)
        if with_request:
            host = url.split("/")[2]
            path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
            req_http = StatusAndHeaders(f"GET {path} HTTP/1.1", [
                ("Host", host), ("User-Agent", "RefinerySampleBot/0.1 (+https://refinery.example/bot)"),
                ("Accept", "text/html,application/xhtml+xml"), ("Accept-Encoding", "identity"),
            ], is_http_request=True)
            req = writer.create_warc_record(
                url, "request", http_headers=req_http,
                warc_headers_dict={"WARC-Record-ID": warc_id("request", url), "WARC-Date": date,
                                   "WARC-Concurrent-To": rid},
            )
            writer.write_record(req)

    for i, a in enumerate(articles):
        latin = a.get("charset") == "iso-8859-1"
        charset = "iso-8859-1" if latin else "utf-8"
        page = render_page(a, a["site"], related(a), charset=charset)
        body = page.encode("latin-1") if latin else page.encode("utf-8")
        write_response(a["url"], body, ctype=f"text/html; charset={charset}",
                       chunk=a.get("chunked") == "yes", with_request=(i % 12 == 0))

    for slug, url in EXACT_DUPS:
        a = by_slug[slug]
        page = render_page(a, a["site"], related(a))
        write_response(url, page.encode("utf-8"))

    for slug, url, site_key, edits, fields in NEAR_DUPS:
        a = dict(by_slug[slug])
        body, title = a["body"], a["title"]
        for old, new in edits:
            if old == "__APPEND__":
                body = body + "\n\n" + new
                continue
            if old in title:
                title = title.replace(old, new)
                continue
            assert old in body, (slug, old)
            body = body.replace(old, new, 1)
        a.update(body=body, title=title, url=url)
        variant = int(fields.pop("variant", 0)) if "variant" in fields else 0
        a.update(fields)
        page = render_page(a, site_key, related(by_slug[slug]), variant=variant)
        write_response(url, page.encode("utf-8"))

    for p in spam_pages():
        write_response(p["url"], p["html"].encode("utf-8"), status=p.get("status", "200 OK"))

    # a redirect with no body
    write_response("http://crumbledger.example/recipes/lentil-soup", b"", status="301 Moved Permanently",
                   extra=[("Location", "https://crumbledger.example/kitchen/lentil-soup/")])
    # non-HTML responses the reader must skip
    write_response("https://spokeandchain.example/images/wheel-diagram.png", png_bytes(48, 32, 11),
                   ctype="image/png")
    css = ("/* site stylesheet */\n" + CSS % {"color": "#1f5f8b"}).encode()
    write_response("https://spokeandchain.example/static/site.css", css, ctype="text/css")
    # a revisit (identical payload seen again later)
    first = articles[0]["url"]
    digest, first_date = payload_digests[first]
    date = clock.next()
    rev = writer.create_revisit_record(
        first, digest=digest, refers_to_uri=first, refers_to_date=first_date,
        http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                      protocol="HTTP/1.1"),
        warc_headers_dict={"WARC-Record-ID": warc_id("revisit", first), "WARC-Date": date},
    )
    writer.write_record(rev)
    emit("web/crawl-sample.warc.gz", buf.getvalue())


def build_wet(records: list[dict], articles: dict[str, dict]) -> None:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True, warc_version="1.0")
    clock = Clock(datetime(2024, 10, 5, 14, 0, 0, tzinfo=UTC))
    info = (
        b"Software-Info: refinery sample_data/build_sample.py\r\n"
        b"Extracted-Date: Sat, 05 Oct 2024 14:00:00 GMT\r\n"
        b"description: Plain-text conversions of fictional pages, Common Crawl WET layout\r\n"
    )
    writer.write_record(writer.create_warc_record(
        "", "warcinfo", payload=io.BytesIO(info), length=len(info),
        warc_content_type="application/warc-fields",
        warc_headers_dict={"WARC-Record-ID": warc_id("warcinfo", "wet-sample"),
                           "WARC-Date": "2024-10-05T14:00:00Z", "WARC-Filename": "crawl-sample.warc.wet.gz"},
    ))
    for r in records:
        if r.get("dup_of"):  # the same article as a WARC page, seen again in the WET file
            a = articles[r["dup_of"]]
            r = dict(r, title=a["title"], body=a["body"])
        text = body_text(r["title"], r["body"]).encode("utf-8")
        date = clock.next()
        rec = writer.create_warc_record(
            r["url"], "conversion", payload=io.BytesIO(text), length=len(text),
            warc_content_type="text/plain",
            warc_headers_dict={
                "WARC-Record-ID": warc_id("conversion", r["url"]), "WARC-Date": date,
                "WARC-Refers-To": warc_id("response", r["url"]),
                "WARC-Identified-Content-Language": r.get("cc_lang", "eng"),
            },
        )
        writer.write_record(rec)
    emit("web/crawl-sample.warc.wet.gz", buf.getvalue())


def build_html_files(pages: list[dict]) -> None:
    for p in pages:
        enc = p.get("encoding", "utf-8")
        meta = p.get("meta_charset", "yes") == "yes"
        label = {"latin-1": "iso-8859-1"}.get(enc, enc)  # the name a browser expects in <meta charset>
        page = render_page(p, p["site"], [], charset=label, meta_charset=meta)
        data = page.encode(enc)
        out = p["out"]
        if out.endswith(".gz"):
            data = gz(data)
        emit(out, data)


# --------------------------------------------------------------------------- books


def build_books(parts: list[dict]) -> None:
    # A book may be split over several source records with the same ``out``; parts are joined in order.
    books: dict[str, dict] = {}
    for p in parts:
        if p["out"] in books:
            books[p["out"]]["body"] += "\n\n" + p["body"].strip("\n")
        else:
            books[p["out"]] = dict(p, body=p["body"].strip("\n"))
    for b in books.values():
        text = b["body"].strip("\n") + "\n"
        if b.get("newline") == "crlf":
            text = text.replace("\n", "\r\n")
        data = text.encode(b.get("encoding", "utf-8"))
        if b["out"].endswith(".gz"):
            data = gz(data)
        emit(b["out"], data)


# --------------------------------------------------------------------------- misc


def misc_records(src: list[dict], articles: dict[str, dict]) -> list[dict]:
    out = []
    for r in src:
        text = r["body"]
        if r.get("dup_of"):
            a = articles[r["dup_of"]]
            text = body_text(a["title"], a["body"]).strip("\n")
        rec = {"id": r["id"], "text": text, "url": r.get("url", ""), "source": r.get("source", "web")}
        for k, v in r.items():
            if k.startswith("x."):
                rec[k[2:]] = json.loads(v)
        out.append(rec)
    return out


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records).encode("utf-8")


def build_misc(articles: dict[str, dict]) -> None:
    forum = misc_records(load_dir("misc/jsonl"), articles)
    emit("misc/forum-and-reviews.jsonl.gz", gz(jsonl(forum)))
    letters = misc_records(load_dir("misc/zst"), articles)
    emit("misc/letters.jsonl.zst", zstandard.ZstdCompressor(level=19, write_checksum=True).compress(jsonl(letters)))
    rows = load_dir("misc/parquet")
    table = pa.table({
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "title": pa.array([r["title"] for r in rows], pa.string()),
        "text": pa.array([" ".join(str(v) for k, v in blocks(r["body"]) if k == "p") for r in rows], pa.string()),
        "category": pa.array([r.get("category", "general") for r in rows], pa.string()),
        "word_count": pa.array([len(r["body"].split()) for r in rows], pa.int32()),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy", use_dictionary=False,
                   write_statistics=False, store_schema=False)
    emit("misc/encyclopedia.parquet", sink.getvalue())


# --------------------------------------------------------------------------- code tree


def minify_js(src: str) -> str:
    """Whitespace/comment stripper for our own JS (no regex literals, no '//' inside strings)."""
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = "\n".join(re.sub(r"(^|\s)//.*$", "", ln) for ln in src.splitlines())
    parts = re.split(r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`)", src)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part)
            continue
        part = re.sub(r"\s+", " ", part)
        part = re.sub(r" ?([{}()\[\];,:=+\-*/<>!?&|.]) ?", r"\1", part)
        out.append(part)
    return "".join(out).strip() + "\n"


def build_code() -> None:
    code = ROOT / "code"
    js_dir = code / "web" / "src"
    bundle = ["/*! sprocket-web v0.4.2 | MIT License | bundled from web/src */"]
    for path in sorted(js_dir.glob("*.js")):
        bundle.append(minify_js(path.read_text(encoding="utf-8")).strip())
    emit("code/web/dist/app.min.js", ("".join(bundle) + "\n").encode())

    # auto-generated constants table
    lines = [
        "# AUTO-GENERATED by tools/gen_tables.py -- DO NOT EDIT.",
        "# Regenerate with `make tables`. Any manual change will be overwritten.",
        '"""Precomputed lookup tables for sprocket.checksum and sprocket.color."""',
        "",
        "CRC32_TABLE: tuple[int, ...] = (",
    ]
    for row in range(0, 256, 4):
        vals = []
        for n in range(row, row + 4):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            vals.append(f"0x{c:08X}")
        lines.append("    " + ", ".join(vals) + ",")
    lines += [")", "", "# sRGB gamma decode, 8-bit input -> 16-bit linear", "SRGB_TO_LINEAR16: tuple[int, ...] = ("]
    for row in range(0, 256, 8):
        vals = []
        for n in range(row, row + 8):
            v = n / 255
            lin = v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
            vals.append(f"{round(lin * 65535):5d}")
        lines.append("    " + ", ".join(vals) + ",")
    lines += [")", "", "# Quarter-wave sine table, 1024 entries, Q15 fixed point", "SINE_Q15: tuple[int, ...] = ("]
    import math
    for row in range(0, 1024, 8):
        vals = [f"{round(math.sin(n / 1024 * math.pi / 2) * 32767):5d}" for n in range(row, row + 8)]
        lines.append("    " + ", ".join(vals) + ",")
    lines += [")", "", "# Gear ratio lookup: (chainring, cog) -> development in metres for a 2096 mm wheel",
              "GEAR_DEVELOPMENT: dict[tuple[int, int], float] = {"]
    for ring in range(28, 54, 2):
        for cog in range(10, 37):
            lines.append(f"    ({ring}, {cog}): {ring / cog * 2.096:.3f},")
    lines += ["}", "", "# ETRTO tyre size (width-bead) -> rolling circumference in mm (pi * (bead + 2 * width))",
              "WHEEL_CIRCUMFERENCE_MM: dict[str, int] = {"]
    for bead in (305, 349, 355, 406, 451, 507, 559, 571, 584, 590, 622, 630, 635):
        for width in range(18, 66, 2):
            lines.append(f'    "{width}-{bead}": {round(math.pi * (bead + 2 * width))},')
    lines += ["}", "", "# Gradient (percent, x10) -> extra watts per kg of rider+bike at 5 m/s, rounded",
              "CLIMB_WATTS_PER_KG: tuple[float, ...] = ("]
    vals = [f"{9.81 * math.sin(math.atan(g / 1000)) * 5:.3f}" for g in range(0, 301)]
    for row in range(0, len(vals), 10):
        lines.append("    " + ", ".join(vals[row:row + 10]) + ",")
    lines += [")", ""]
    emit("code/sprocket/_tables.py", "\n".join(lines).encode())

    # package-lock.json style lock file (fictional packages, fake but well-formed integrity hashes)
    deps = [
        ("tiny-router", "2.3.1"), ("dom-bits", "1.0.9"), ("fmt-date-lite", "0.8.2"), ("query-params-mini", "3.1.0"),
        ("event-hub-lite", "1.4.4"), ("css-vars-shim", "0.3.7"), ("fetch-retry-wrap", "2.0.1"),
        ("numfmt-small", "1.2.0"), ("idle-callback-poly", "0.2.5"), ("svg-sparkline-lite", "0.9.3"),
        ("test-tap-mini", "4.0.2"), ("lint-rules-plain", "1.7.0"), ("bundle-concat", "0.5.1"),
        ("watch-files-lite", "2.2.2"), ("color-convert-mini", "1.1.8"), ("ansi-tint", "0.6.0"),
        ("path-join-tiny", "1.0.3"), ("mime-guess-small", "2.4.0"), ("glob-lite", "3.0.6"),
        ("semver-compare-mini", "1.0.1"), ("argv-parse-lite", "0.9.9"), ("deep-equal-small", "2.1.4"),
    ]
    # transitive dependencies, as a real lock file would list them
    stems = ["array", "string", "object", "event", "stream", "path", "color", "date", "number", "promise",
             "buffer", "queue", "cache", "token", "parse", "format", "merge", "hash", "glob", "watch"]
    tails = ["utils", "lite", "core", "helpers", "shim", "polyfill", "tools", "mini", "kit", "plus"]
    for i in range(150):
        name = f"{stems[(i * 7) % len(stems)]}-{tails[(i * 3 + i // len(stems)) % len(tails)]}"
        if any(n == name for n, _ in deps):
            name += f"-{i}"
        deps.append((name, f"{1 + i % 4}.{(i * 5) % 13}.{(i * 11) % 9}"))
    seen_names: set[str] = set()
    deps = [d for d in deps if not (d[0] in seen_names or seen_names.add(d[0]))]
    packages: dict[str, dict] = {"": {"name": "sprocket-web", "version": "0.4.2", "license": "MIT",
                                       "dependencies": {n: f"^{v}" for n, v in deps[:10]},
                                       "devDependencies": {n: f"^{v}" for n, v in deps[10:22]}}}
    for i, (n, v) in enumerate(deps):
        h = base64.b64encode(hashlib.sha512(f"{n}@{v}".encode()).digest()).decode()
        entry = {"version": v, "resolved": f"https://registry.npm.example/{n}/-/{n}-{v}.tgz",
                 "integrity": f"sha512-{h}", "license": "MIT"}
        if 10 <= i < 22 or (i >= 22 and i % 2):
            entry["dev"] = True
        if i % 3 == 0:
            entry["dependencies"] = {deps[(i + 5) % len(deps)][0]: f"^{deps[(i + 5) % len(deps)][1]}"}
        if i % 4 == 1:
            entry["engines"] = {"node": ">=18"}
        packages[f"node_modules/{n}"] = entry
    lock = {"name": "sprocket-web", "version": "0.4.2", "lockfileVersion": 3, "requires": True, "packages": packages}
    emit("code/web/package-lock.json", (json.dumps(lock, indent=2) + "\n").encode())

    # binary files with source-like names
    emit("code/assets/logo.png", png_bytes(64, 64, 5))
    blob = bytearray()
    x = 0x2545F491
    for _ in range(6144):  # xorshift32 stream: incompressible, NUL bytes included
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        blob += struct.pack("<I", x)
    emit("code/data/blob.bin", b"SPRK\x00\x01\x00\x00" + bytes(blob))
    # an exact copy of a file in another folder (as happens with copy-pasted helpers)
    emit("code/tools/ci/common.sh", (code / "scripts" / "common.sh").read_bytes())


# --------------------------------------------------------------------------- main


def check_pii() -> None:
    """Every planted PII value must appear in at least one generated (decompressed) output."""
    planted = json.loads((ROOT / "PLANTED_PII.json").read_text(encoding="utf-8"))
    blobs = []
    for rel, data in OUTPUTS.items():
        if rel.endswith(".gz"):
            data = gzip.decompress(data)
        elif rel.endswith(".zst"):
            data = zstandard.ZstdDecompressor().decompress(data)
        blobs.append(data.decode("utf-8", errors="replace"))
        if rel.endswith(".warc.gz"):
            blobs.append(data.decode("latin-1"))
    everything = "\n".join(blobs)
    missing = [v["value"] for v in planted["values"] if v["value"] not in everything]
    if missing:
        raise SystemExit(f"planted PII not found in outputs: {missing}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify committed files match a fresh build")
    args = ap.parse_args()

    articles = load_dir("web/articles")
    build_web(articles)
    build_wet(load_dir("web/wet"), {a["slug"]: a for a in articles})
    build_html_files(load_dir("web/html"))
    build_books(load_dir("books"))
    build_misc({a["slug"]: a for a in articles})
    build_code()
    check_pii()

    bad = []
    for rel, data in sorted(OUTPUTS.items()):
        path = ROOT / rel
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                bad.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        print(f"{len(data):>9,d}  {rel}")
    if bad:
        print("out of date:", *bad, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
