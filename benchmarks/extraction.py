# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
"""HTML main-text extraction: quality and speed of each extractor on pages with ground truth.

Ground truth in ``../shared/data/web``: trafilatura's must-contain / must-not-contain snippets
(``trafilatura_cache``, ``trafilatura_eval_sample``), Readability's expected article HTML
(``readability_test_pages``) and newspaper's gold full text (``newspaper_fulltext``).

Per extractor it prints snippet recall (share of must-contain snippets found), snippet precision
(share of must-not-contain snippets absent), token-level F1 against gold text (bag of lower-cased
word tokens; CJK characters count one token each) and pages/s (single process, one core).

Run: .venv/bin/python benchmarks/extraction.py [--extractors trafilatura,resiliparse] [--limit N]
"""

from __future__ import annotations

import sys

# Run as a script, this folder is sys.path[0]: a sibling named like a stdlib module (tokenize.py)
# would shadow it, so the folder is dropped and the repository root used instead.
sys.path[:1] = [str(__import__("pathlib").Path(__file__).resolve().parents[1])]

import argparse
import gzip
import json
import re
import time
from collections import Counter
from pathlib import Path

from pipeline.ingest import extract_with

WEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "web"
EXTRACTORS = (
    "trafilatura_defaults",  # trafilatura.extract(html) as shipped: the reference of the F1 target
    "trafilatura",
    "trafilatura_precision",
    "trafilatura_recall",
    "trafilatura_fast",
    "resiliparse",
)
_TOKEN_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]|[^\W_]+")
_WS_RE = re.compile(r"\s+")


def tokens(text: str) -> Counter[str]:
    return Counter(t.lower() for t in _TOKEN_RE.findall(text))


def token_f1(pred: str, gold: str) -> float:
    p, g = tokens(pred), tokens(gold)
    if not p and not g:
        return 1.0
    overlap = sum((p & g).values())
    if not overlap:
        return 0.0
    prec, rec = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * prec * rec / (prec + rec)


def _squash(s: str) -> str:
    return _WS_RE.sub(" ", s).strip()


def load_pages(limit: int | None) -> list[dict]:
    """Pages with ground truth: {html, url, with, without, gold} (the last three may be empty)."""
    from resiliparse.extract.html2text import extract_plain_text

    pages: list[dict] = []
    for name in ("trafilatura_cache", "trafilatura_eval_sample"):
        for line in gzip.open(WEB / f"{name}.jsonl.gz", "rt", encoding="utf-8"):
            r = json.loads(line)
            if r.get("with_snippets") or r.get("without_snippets"):
                pages.append(
                    {
                        "set": "snippets",
                        "html": r["html"],
                        "url": r.get("url"),
                        "with": r.get("with_snippets") or [],
                        "without": r.get("without_snippets") or [],
                    }
                )
    for line in gzip.open(WEB / "readability_test_pages.jsonl.gz", "rt", encoding="utf-8"):
        r = json.loads(line)
        if r.get("expected_html"):
            gold = extract_plain_text(r["expected_html"], preserve_formatting=True)
            pages.append({"set": "readability", "html": r["html"], "url": None, "gold": gold})
    for line in gzip.open(WEB / "newspaper_fulltext.jsonl.gz", "rt", encoding="utf-8"):
        r = json.loads(line)
        if r.get("expected_text"):
            pages.append({"set": "newspaper", "html": r["html"], "url": r.get("url"), "gold": r["expected_text"]})
    return pages[:limit] if limit else pages


def evaluate(extractor: str, pages: list[dict]) -> dict[str, float]:
    found = wanted = absent = unwanted = 0
    f1s: dict[str, list[float]] = {"readability": [], "newspaper": []}
    t0 = time.perf_counter()
    outputs = [extract_with(extractor, p["html"], url=p["url"]) or "" for p in pages]
    secs = time.perf_counter() - t0
    for p, out in zip(pages, outputs, strict=True):
        sq = _squash(out)
        if p["set"] == "snippets":
            wanted += len(p["with"])
            found += sum(_squash(s) in sq for s in p["with"])
            unwanted += len(p["without"])
            absent += sum(_squash(s) not in sq for s in p["without"])
        else:
            f1s[p["set"]].append(token_f1(out, p["gold"]))
    allf1 = f1s["readability"] + f1s["newspaper"]
    return {
        "snip_recall": found / max(wanted, 1),
        "snip_precision": absent / max(unwanted, 1),
        "f1_readability": sum(f1s["readability"]) / max(len(f1s["readability"]), 1),
        "f1_newspaper": sum(f1s["newspaper"]) / max(len(f1s["newspaper"]), 1),
        "f1_all": sum(allf1) / max(len(allf1), 1),
        "pages_s": len(pages) / secs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--extractors", default=",".join(EXTRACTORS))
    ap.add_argument("--limit", type=int, default=None, help="first N pages only (quick check)")
    args = ap.parse_args()
    if not WEB.is_dir():
        print(f"skipped: {WEB} not found")
        return
    try:
        import os

        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    except (AttributeError, OSError):
        pass
    pages = load_pages(args.limit)
    n_snip = sum(p["set"] == "snippets" for p in pages)
    print(f"{len(pages)} pages: {n_snip} with snippets, {len(pages) - n_snip} with gold text; one core")
    print(f"{'extractor':30s} {'snip_rec':>8s} {'snip_prec':>9s} {'F1_read':>8s} {'F1_news':>8s} {'F1_all':>7s} "
          f"{'pages/s':>8s}")  # fmt: skip
    from pipeline.ingest.config import IngestConfig

    default = IngestConfig().extractor
    for name in args.extractors.split(","):
        r = evaluate(name, pages)
        tag = f"{name}{' (default)' if name == default else ''}"
        print(f"{tag:30s} {r['snip_recall']:8.3f} {r['snip_precision']:9.3f} {r['f1_readability']:8.3f} "
              f"{r['f1_newspaper']:8.3f} {r['f1_all']:7.3f} {r['pages_s']:8.1f}", flush=True)  # fmt: skip
    print("targets: default F1 >= trafilatura defaults on the same pages; >= 50 pages/s on one core")


if __name__ == "__main__":
    main()
