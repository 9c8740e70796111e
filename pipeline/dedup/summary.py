"""Dedup figures for the manifest and the run report (cluster sizes, removals per reason and source).

``cluster_summary`` computes them from ``find_duplicates``' output; ``dedup_report_rows`` makes the report's
tables from them.
"""

from __future__ import annotations

from typing import Any

import polars as pl

_SIZE_BUCKETS = ((2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, None))


def cluster_summary(
    removed: pl.DataFrame, top: int = 10, totals_by_source: dict[str, int] | None = None
) -> dict[str, Any]:
    """Figures for the manifest and report from ``find_duplicates``' output: cluster counts, a size
    histogram, the largest clusters, and the removed share per source (given documents per source)."""
    by_reason = dict(removed.group_by("reason").len().sort("reason").iter_rows()) if len(removed) else {}
    clusters = (
        removed.group_by("cluster_id")
        .agg(pl.col("cluster_size").first())
        .sort("cluster_size", "cluster_id", descending=[True, False])
    )
    hist = {}
    for lo, hi in _SIZE_BUCKETS:
        sel = clusters["cluster_size"] >= lo if hi is None else clusters["cluster_size"].is_between(lo, hi)
        hist[f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")] = int(sel.sum())
    removed_src = dict(removed.group_by("source").len().sort("source").iter_rows()) if len(removed) else {}
    by_source = {}
    for s in sorted(set(removed_src) | set(totals_by_source or {})):
        total = (totals_by_source or {}).get(s)
        n = int(removed_src.get(s, 0))
        by_source[s] = {"removed": n, "documents": total, "share": round(n / total, 4) if total else None}
    return {
        "clusters": len(clusters),
        "removed": len(removed),
        "removed_exact": int(by_reason.get("exact_duplicate", 0)),
        "removed_near": int(by_reason.get("near_duplicate", 0)),
        "removed_url": int(by_reason.get("url_duplicate", 0)),
        "removed_by_reason": {k: int(v) for k, v in by_reason.items()},
        "removed_against_earlier_run": int(removed["against_earlier_run"].sum()) if len(removed) else 0,
        "cluster_size_histogram": hist,
        "removed_by_source": by_source,
        "largest_clusters": [{"cluster_id": c, "keeper": c, "size": int(s)} for c, s in clusters.head(top).iter_rows()],
    }


def dedup_report_rows(stats: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """Report tables from the dedup stage's manifest stats: (title, header, rows) each."""
    tables: list[tuple[str, list[str], list[list[Any]]]] = []
    lsh = stats.get("lsh") or {}
    if lsh:
        tables.append(("LSH parameters", ["parameter", "value"], [[k, v] for k, v in lsh.items()]))
    hist = stats.get("cluster_size_histogram") or {}
    if hist:
        # numeric order of the buckets ("2", "3", ..., "10-99", "100+"): a manifest's keys come back sorted as text
        order = sorted(hist, key=lambda k: int(k.rstrip("+").split("-")[0]))
        tables.append(("Cluster sizes", ["cluster size", "clusters"], [[k, hist[k]] for k in order]))
    by_source = stats.get("removed_by_source") or {}
    if by_source:
        rows = [
            [s, v.get("removed"), v.get("documents"), f"{100 * v['share']:.2f}%" if v.get("share") is not None else ""]
            for s, v in by_source.items()
        ]
        tables.append(("Removed by source", ["source", "removed", "documents", "removed share"], rows))
    largest = stats.get("largest_clusters") or []
    if largest:
        tables.append(
            ("Largest clusters", ["kept document", "cluster size"], [[c["keeper"], c["size"]] for c in largest])
        )
    return tables
