"""Dedup quality and speed: ours against datatrove, text-dedup and plain datasketch on one corpus.

1. Base corpus: real documents from ../shared/data (``make_corpus.py`` with its own planted
   duplicates turned off), then a labelled set is built from it: for a share of the documents,
   copies made by exact copying, word edits, paragraph reordering, boilerplate insertion, re-wrapping
   and encoding changes (curly quotes, dashes, NBSP, HTML entities). Each original with its copies
   is one true group.
2. Ours: signatures + candidates + clusters + filter (apply) on the loaded documents, timed end to
   end; pairwise precision / recall / F1 over same-cluster pairs. Pairs we report that are not
   planted but have true 5-gram Jaccard >= threshold (natural duplicates in the source text) count
   as correct and are listed separately.
3. Reference tools (``../shared/bench/*.py``) on the same corpus file, in the same run: wall time,
   MB/s and removal-based precision / recall / F1 for every tool (ours included) so all compare on
   the same footing.

    python benchmarks/dedup.py [--mb 20] [--threshold 0.8] [--skip-reference]
"""

from __future__ import annotations

import sys
from pathlib import Path

# keep benchmarks/ off the import path, so no script here can shadow a standard-library module
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from itertools import combinations  # noqa: E402

import polars as pl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
BENCH = SHARED / "bench"

from pipeline.dedup.stage import DedupConfig, apply_duplicates, find_duplicates, signatures  # noqa: E402

_BOILER = [
    "Subscribe to our newsletter for the latest updates and exclusive offers.",
    "Share this article on Facebook, Twitter and LinkedIn.",
    "Copyright (c) All rights reserved. Privacy Policy | Terms of Use | Contact us",
    "Click here to read more stories like this one.",
]


def _edit_words(text: str, rng: random.Random, frac: float) -> str:
    words = text.split(" ")
    for _ in range(max(1, int(len(words) * frac))):
        i = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            words[i] = rng.choice(["the", "a", "data", "new", "very", "model", "and"])
        elif op < 0.7 and len(words) > 10:
            del words[i]
        else:
            words.insert(i, rng.choice(["really", "also", "just", "quite"]))
    return " ".join(words)


def _reorder(text: str, rng: random.Random) -> str:
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paras) < 3:
        sents = re.split(r"(?<=[.!?])\s+", text)
        if len(sents) < 3:
            return text + "\n"
        k = rng.randrange(1, len(sents))
        return " ".join(sents[k:] + sents[:k])
    i, j = rng.sample(range(len(paras)), 2)
    paras[i], paras[j] = paras[j], paras[i]
    return "\n\n".join(paras)


def _boilerplate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    lines.insert(0, rng.choice(_BOILER))
    lines.append(rng.choice(_BOILER))
    return "\n".join(lines)


def _rewrap(text: str, rng: random.Random) -> str:
    words = text.split()
    width = rng.choice([60, 72, 100])
    out, line = [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            out.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    out.append(line)
    return "\r\n".join(out) if rng.random() < 0.5 else "\n".join(out)


def _encoding(text: str, rng: random.Random) -> str:
    t = text.replace("'", "\u2019").replace(' "', " \u201c").replace('" ', "\u201d ").replace(" - ", " \u2014 ")
    t = t.replace(". ", ".\u00a0 ") if rng.random() < 0.5 else t.replace("&", "&amp;")
    return t


KINDS = {
    "exact": lambda t, r: t,
    "edit": lambda t, r: _edit_words(t, r, 0.01),
    "reorder": _reorder,
    "boilerplate": _boilerplate,
    "rewrap": _rewrap,
    "encoding": _encoding,
    "mixed": lambda t, r: _encoding(_rewrap(_edit_words(t, r, 0.005), r), r),
}


def build_corpus(mb: float, seed: int, workdir: Path) -> tuple[Path, pl.DataFrame, list[list[str]]]:
    base = workdir / "base.jsonl.gz"
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "make_corpus.py"),
            "--out",
            str(base),
            "--mb",
            str(round(mb / 1.1, 2)),  # base size: planted copies and dropped natural dups net about +10%
            "--seed",
            str(seed),
            "--exact-dup-frac",
            "0",
            "--near-dup-frac",
            "0",
        ],
        check=True,
        capture_output=True,
    )
    rows = [json.loads(line) for line in gzip.open(base, "rt", encoding="utf-8")]
    rng = random.Random(seed)
    docs = [{"id": r["id"], "text": r["text"], "source": r.get("source", "web")} for r in rows]
    docs = _drop_natural_duplicates(docs)
    eligible = [d for d in docs if len(d["text"].split()) >= 100]
    groups: list[list[str]] = []
    n_orig = int(len(docs) * 0.12)
    extra = []
    for k, d in enumerate(rng.sample(eligible, min(n_orig, len(eligible)))):
        members = [d["id"]]
        for c in range(1 if rng.random() < 0.8 else 2):
            kind = list(KINDS)[(k + c) % len(KINDS)]
            cid = f"dup{k:05d}_{c}_{kind}"
            extra.append({"id": cid, "text": KINDS[kind](d["text"], rng), "source": d["source"]})
            members.append(cid)
        groups.append(members)
    docs += extra
    rng.shuffle(docs)
    path = workdir / "labelled.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    return path, pl.DataFrame(docs, schema={"id": pl.String, "text": pl.String, "source": pl.String}), groups


def _drop_natural_duplicates(docs: list[dict], below: float = 0.4) -> list[dict]:
    """The source text has its own near duplicates (Gutenberg licence sections, licence headers in
    code), often chained: drop every base document in a loose cluster (LSH tuned for Jaccard
    ``below``, recall-weighted), so the planted groups are the only duplicates left."""
    df = pl.DataFrame(docs, schema={"id": pl.String, "text": pl.String, "source": pl.String})
    loose = DedupConfig(threshold=below, fp_weight=0.1, fn_weight=0.9)
    rm = find_duplicates(signatures(df, loose), loose)
    drop = set(rm["id"].to_list()) | set(rm["duplicate_of"].to_list())
    print(f"base: {len(docs)} documents, {len(drop)} dropped as natural near duplicates (J >~ {below})")
    return [d for d in docs if d["id"] not in drop]


def _jaccard(a: str, b: str, n: int = 5) -> float:
    def sh(t: str) -> set[tuple[str, ...]]:
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i : i + n]) for i in range(max(len(w) - n + 1, 1))}

    x, y = sh(a), sh(b)
    return len(x & y) / max(len(x | y), 1)


def pairwise(removed: pl.DataFrame, groups: list[list[str]], texts: dict[str, str], threshold: float) -> dict:
    truth = {tuple(sorted(p)) for g in groups for p in combinations(g, 2)}
    clusters: dict[str, list[str]] = {}
    for i, c in removed.select("id", "cluster_id").iter_rows():
        clusters.setdefault(c, [c]).append(i)
    pred = {tuple(sorted(p)) for m in clusters.values() for p in combinations(sorted(set(m)), 2)}
    natural = {p for p in pred - truth if _jaccard(texts[p[0]], texts[p[1]]) >= threshold}
    tp = len(pred & truth) + len(natural)
    prec = tp / len(pred) if pred else 1.0
    rec = len(pred & truth) / len(truth) if truth else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {
        "pairs_true": len(truth),
        "pairs_pred": len(pred),
        "natural_dup_pairs": len(natural),
        "precision": round(prec, 4),
        "recall": round(rec, 4),
        "f1": round(f1, 4),
    }


def removal_scores(removed_ids: set[str], groups: list[list[str]]) -> dict:
    """Removal-based scores usable for every tool: each true group should lose all but one member."""
    in_group = {i for g in groups for i in g}
    expected = sum(len(g) - 1 for g in groups)
    correct = sum(min(sum(i in removed_ids for i in g), len(g) - 1) for g in groups)
    over = sum(max(sum(i in removed_ids for i in g) - (len(g) - 1), 0) for g in groups)  # whole group removed
    other = len(removed_ids - in_group)
    prec = correct / len(removed_ids) if removed_ids else 1.0
    rec = correct / expected if expected else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {
        "removed": len(removed_ids),
        "removed_outside_groups": other,
        "groups_fully_removed": over,
        "removal_precision": round(prec, 4),
        "removal_recall": round(rec, 4),
        "removal_f1": round(f1, 4),
    }


def run_ours(df: pl.DataFrame, cfg: DedupConfig, shard_docs: int = 2000) -> tuple[pl.DataFrame, float, dict]:
    start = time.perf_counter()
    shards = [df[i : i + shard_docs] for i in range(0, df.height, shard_docs)]
    t0 = time.perf_counter()
    sigs = pl.concat([signatures(s, cfg) for s in shards])
    t1 = time.perf_counter()
    removed = find_duplicates(sigs, cfg)
    t2 = time.perf_counter()
    kept = sum(apply_duplicates(s, removed).kept.height for s in shards)
    t3 = time.perf_counter()
    assert kept + removed.height == df.height
    return (
        removed,
        t3 - start,
        {"signatures_s": round(t1 - t0, 2), "clusters_s": round(t2 - t1, 2), "filter_s": round(t3 - t2, 2)},
    )


def run_reference(script: str, corpus: Path, workdir: Path, extra: list[str]) -> dict:
    wd = workdir / script.removesuffix(".py")
    cmd = ["python3", str(BENCH / script), "--input", str(corpus), "--workdir", str(wd), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    lines = [x for x in proc.stdout.strip().splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        return {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-500:]}
    res = json.loads(lines[-1])
    ids_file = Path(res.get("removed_ids_file") or wd / "removed_ids.txt")
    res["removed_ids"] = set(ids_file.read_text().split()) if ids_file.is_file() else set()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20.0)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--verify", action="store_true", help="also time ours with true-Jaccard verification")
    args = ap.parse_args()
    if not (SHARED / "data").is_dir() or not (BENCH / "make_corpus.py").is_file():
        print("SKIP: ../shared/data or ../shared/bench not found")
        return
    with tempfile.TemporaryDirectory(prefix="refinery-dedup-bench-") as tmp:
        workdir = Path(tmp)
        corpus, df, groups = build_corpus(args.mb, args.seed, workdir)
        mb = df["text"].str.len_bytes().sum() / 1e6
        print(
            f"corpus: {df.height} docs, {mb:.1f} MB, {len(groups)} true groups "
            f"({sum(len(g) - 1 for g in groups)} planted copies)"
        )
        texts = dict(df.select("id", "text").iter_rows())
        cfg = DedupConfig(threshold=args.threshold)
        print(f"LSH: {cfg.lsh_summary()}")
        results = []
        signatures(df[:50], cfg)  # warm-up (imports, permutations)
        removed, secs, parts = run_ours(df, cfg)
        pw = pairwise(removed, groups, texts, args.threshold)
        ours = {
            "tool": "refinery",
            "wall_s": round(secs, 2),
            "mb_per_s": round(mb / secs, 2),
            **parts,
            **pw,
            **removal_scores(set(removed["id"].to_list()), groups),
        }
        results.append(ours)
        if args.verify:
            vcfg = DedupConfig(threshold=args.threshold, verify=True)
            removed_v, secs_v, parts_v = run_ours(df, vcfg)
            results.append(
                {
                    "tool": "refinery+verify",
                    "wall_s": round(secs_v, 2),
                    "mb_per_s": round(mb / secs_v, 2),
                    **parts_v,
                    **pairwise(removed_v, groups, texts, args.threshold),
                    **removal_scores(set(removed_v["id"].to_list()), groups),
                }
            )
        # per planted kind recall
        rm = set(removed["id"].to_list())
        by_kind: dict[str, list[int]] = {}
        for g in groups:
            for c in g[1:]:
                kind = c.rsplit("_", 1)[-1]
                by_kind.setdefault(kind, []).append(int(c in rm or g[0] in rm))
        print("recall by planted kind:", {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())})
        if not args.skip_reference:
            for script, extra in (
                ("datasketch_minhash.py", ["--threshold", str(args.threshold)]),
                ("textdedup_minhash.py", ["--threshold", str(args.threshold), "--num-proc", "2"]),
                ("datatrove_minhash.py", []),
            ):
                t = time.perf_counter()
                res = run_reference(script, corpus, workdir, extra)
                if "error" in res:
                    results.append({"tool": script, **res})
                    continue
                ids = res.pop("removed_ids")
                results.append(
                    {
                        "tool": res.get("tool", script),
                        "wall_s": res.get("wall_s"),
                        "mb_per_s": res.get("mb_per_s"),
                        "harness_s": round(time.perf_counter() - t, 1),
                        **removal_scores(ids, groups),
                    }
                )
        print(f"peak RSS (this process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        cols = [
            "tool",
            "wall_s",
            "mb_per_s",
            "precision",
            "recall",
            "f1",
            "removal_precision",
            "removal_recall",
            "removal_f1",
            "removed",
        ]
        print(" | ".join(cols))
        for r in results:
            print(" | ".join(str(r.get(c, "")) for c in cols))
        base = results[0]["mb_per_s"]
        for r in results[1:]:
            if r.get("mb_per_s"):
                print(f"speed ratio refinery / {r['tool']}: {base / r['mb_per_s']:.1f}x")
        print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
