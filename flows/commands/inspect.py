"""`refinery inspect`: look at what a run dropped or changed, with the figures behind each decision."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

console = Console()
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def _read(folder: Path) -> pl.DataFrame | None:
    files = sorted(folder.glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else None


def _snippet(text: str | None, chars: int) -> str:
    return "" if text is None else " ".join(text.split())[:chars]


def summary(rejected: pl.DataFrame) -> None:
    counts = rejected.group_by("stage", "reason").len().sort(["stage", "len"], descending=[False, True])
    table = Table(title="Rejected documents by stage and reason")
    for col in ("stage", "reason", "documents"):
        table.add_column(col)
    for stage, reason, n in counts.iter_rows():
        table.add_row(stage, reason, f"{n:,}")
    console.print(table)


def show_rejected(rows: pl.DataFrame, chars: int) -> None:
    for row in rows.iter_rows(named=True):
        console.rule(f"[bold]{row['id']}[/] {row['source']} · {row['stage']} · {row['reason']}")
        console.print(f"[dim]{row['path']}[/]")
        if row.get("detail"):
            console.print(f"statistic: [cyan]{row['detail']}[/]")
        if row.get("duplicate_of"):
            console.print(f"duplicate of: {row['duplicate_of']}")
        console.print(_snippet(row["text"], chars), markup=False, highlight=False)


def show_dedup(run: Path, rejected: pl.DataFrame, n: int, seed: int, chars: int) -> None:
    dups = rejected.filter(pl.col("stage") == "dedup")
    if dups.is_empty():
        console.print("No documents were removed as duplicates.")
        return
    sizes = dups.group_by("duplicate_of").len().with_columns((pl.col("len") + 1).alias("size"))
    hist = sizes.group_by("size").len().sort("size")
    table = Table(title="Duplicate cluster sizes (kept copy included)")
    table.add_column("cluster size")
    table.add_column("clusters")
    for size, count in hist.iter_rows():
        table.add_row(str(size), f"{count:,}")
    console.print(table)
    share = dups.group_by("source").len().sort("source")
    console.print("removed by source: " + ", ".join(f"{s}: {c:,}" for s, c in share.iter_rows()))
    docs = _read(run / "documents")
    kept = dict(docs.select("id", "text").iter_rows()) if docs is not None else {}
    for row in dups.sample(min(n, dups.height), seed=seed).sort("id").iter_rows(named=True):
        pair = Table(title=f"{row['reason']}: {row['id']} (removed) vs {row['duplicate_of']} (kept)", show_lines=True)
        pair.add_column("removed", ratio=1)
        pair.add_column("kept", ratio=1)
        pair.add_row(_snippet(row["text"], chars), _snippet(kept.get(row["duplicate_of"]), chars) or "(not kept)")
        console.print(pair)


def _replacements(before: str, after: str) -> list[tuple[str, str]]:
    """Pair each placeholder in ``after`` with the text it replaced in ``before``.

    PII removal only swaps spans for placeholders, so the text between placeholders matches
    exactly and anchors each span's end.
    """
    out, i, j = [], 0, 0
    for m in _PLACEHOLDER.finditer(after):
        start = i + (m.start() - j)
        nxt = _PLACEHOLDER.search(after, m.end())
        anchor = after[m.end() : nxt.start() if nxt else len(after)][:24]
        end = before.find(anchor, start) if anchor else len(before)
        if end < 0:
            break
        out.append((before[max(0, start - 40) : end + 20], after[max(0, m.start() - 40) : m.end() + 20]))
        i, j = end, m.end()
    return out


def show_pii(run: Path, manifest: dict[str, Any], n: int, seed: int) -> None:
    names = [s["name"] for s in manifest["stages"]]
    if "pii" not in names:
        _fail("this run has no pii stage")
    pii = manifest["stages"][names.index("pii")]
    before_stage = manifest["stages"][names.index("pii") - 1]
    stats = pii.get("stats") or {}
    console.print(f"replacements by type: {json.dumps(stats.get('counts', {}))}")
    inputs = {u["index"]: Path(u["dir"]) / "docs.parquet" for u in before_stage.get("units", [])}
    shown = 0
    for unit in pii.get("units", []):
        out = Path(unit["dir"]) / "docs.parquet"
        src = inputs.get(unit["index"])
        if not out.is_file() or src is None or not src.is_file():
            continue
        changed = pl.read_parquet(out, columns=["id", "text", "pii_count"]).filter(pl.col("pii_count") > 0)
        if changed.is_empty():
            continue
        changed = changed.sample(min(n - shown, changed.height), seed=seed)
        originals = dict(
            pl.read_parquet(src, columns=["id", "text"]).filter(pl.col("id").is_in(changed["id"])).iter_rows()
        )
        for doc_id, after, count in changed.sort("id").iter_rows():
            console.rule(f"[bold]{doc_id}[/] · {count} replacement(s)")
            for old, new in _replacements(originals.get(doc_id, ""), after)[:3]:
                console.print("[red]- [/]" + " ".join(old.split()), markup=True, highlight=False)
                console.print("[green]+ [/]" + " ".join(new.split()), markup=True, highlight=False)
            shown += 1
        if shown >= n:
            break
    if shown == 0:
        console.print("No document had PII replaced (or the work cache of this run was removed).")


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        run: Annotated[Path, typer.Argument(help="A run folder written by `refinery run`.")],
        stage: Annotated[
            str | None, typer.Option(help="Only this stage; `dedup` and `pii` have their own views.")
        ] = None,
        reason: Annotated[str | None, typer.Option(help="Rejection reason, or its rule name (prefix).")] = None,
        n: Annotated[int, typer.Option("-n", help="How many documents to show.")] = 5,
        seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
        chars: Annotated[int, typer.Option(help="Characters of text shown per document.")] = 400,
    ) -> None:
        """Show sampled rejected documents with the reason and statistic that dropped them."""
        if not (run / "manifest.json").is_file():
            _fail(f"{run} is not a run folder (no manifest.json)")
        manifest = json.loads((run / "manifest.json").read_text())
        rejected = _read(run / "rejected")
        if stage == "pii":
            show_pii(run, manifest, n, seed)
            return
        if rejected is None:
            console.print("Nothing was rejected in this run.")
            return
        if stage == "dedup" and reason is None:
            show_dedup(run, rejected, n, seed, chars)
            return
        if stage is None and reason is None:
            summary(rejected)
            return
        rows = rejected
        if stage is not None:
            rows = rows.filter(pl.col("stage") == stage)
        if reason is not None:
            rows = rows.filter((pl.col("reason") == reason) | pl.col("reason").str.starts_with(reason))
        if rows.is_empty():
            _fail(
                f"no rejected documents match stage={stage!r} reason={reason!r}; "
                f"reasons here: {', '.join(sorted(set(rejected['reason'].drop_nulls()))[:20])}"
            )
        console.print(f"{rows.height:,} matching documents; showing {min(n, rows.height)}")
        show_rejected(rows.sample(min(n, rows.height), seed=seed).sort("id"), chars)
