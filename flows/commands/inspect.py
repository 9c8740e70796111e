"""`refinery inspect`: look at what a run dropped or changed, with the figures behind each decision."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from flows.cli_options import fail

if TYPE_CHECKING:  # polars and the report module load when the command runs, not for `refinery --help`
    import polars as pl

    from pipeline.report import Redactor

console = Console()
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*(?::[0-9a-f]{12})?>")


def _read(folder: Path) -> pl.DataFrame | None:
    import polars as pl

    files = sorted(folder.glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else None


def _snippet(text: str | None, chars: int, redact: Redactor | None = None, source: str | None = None) -> str:
    from pipeline.report import SNIP_MARGIN

    if text is None:
        return ""
    flat = " ".join(text.split())
    if redact is None:
        return flat[:chars]
    # redact a margin past the cut: no value is cut short of recognition inside the shown part
    return (redact(flat[: chars + SNIP_MARGIN], source) or "")[:chars]


def summary(rejected: pl.DataFrame, redact: Redactor) -> None:
    from rich.table import Table

    counts = rejected.group_by("stage", "reason").len().sort(["stage", "len"], descending=[False, True])
    table = Table(title="Rejected documents by stage and reason")
    for col in ("stage", "reason", "documents"):
        table.add_column(col)
    for stage, reason, n in counts.iter_rows():
        table.add_row(stage, redact(reason, None), f"{n:,}")
    console.print(table)


def show_rejected(rows: pl.DataFrame, chars: int, redact: Redactor) -> None:
    for row in rows.iter_rows(named=True):
        src = row["source"]
        console.rule(f"[bold]{row['id']}[/] {src} · {row['stage']} · {redact(row['reason'], src)}")
        console.print(redact(row["path"], src) or "", style="dim", markup=False, highlight=False)
        if row.get("detail"):
            console.print(f"statistic: {redact(row['detail'], src)}", style="cyan", markup=False, highlight=False)
        if row.get("duplicate_of"):
            console.print(f"duplicate of: {row['duplicate_of']}")
        console.print(_snippet(row["text"], chars, redact, src), markup=False, highlight=False)


def show_dedup(run: Path, rejected: pl.DataFrame, n: int, seed: int, chars: int, redact: Redactor) -> None:
    import polars as pl
    from rich.table import Table

    from pipeline.dedup.apply import removed_vs_kept
    from pipeline.report import scan_texts

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
    picked = dups.sample(min(n, dups.height), seed=seed).sort("id")
    for row in removed_vs_kept(picked, scan_texts(run / "documents")).iter_rows(named=True):
        title = f"{row['reason']}: {row['removed_id']} (removed) vs {row['kept_id']} (kept)"
        pair = Table(title=title, show_lines=True)
        pair.add_column("removed", ratio=1)
        pair.add_column("kept", ratio=1)
        src = row["source"]
        removed = _snippet(row["removed_text"], chars, redact, src)
        pair.add_row(removed, _snippet(row["kept_text"], chars, redact, src) or "(not kept)")
        console.print(pair)


# Column values shown around each placeholder.
_CONTEXT = 40


def _placeholder_pattern(params: dict[str, Any]) -> re.Pattern[str]:
    """The replacement tokens of the run's ``pii`` config, hashed forms ("<EMAIL:1f0c9a2b7e4d>") included."""
    from pipeline.pii.config import PiiConfig

    cfg = PiiConfig(**params)
    tokens = {cfg.placeholder(e) for e in [*cfg.entities, *(cfg.ner_entities if cfg.ner_model else [])]}
    alts = []
    for t in sorted(tokens, key=len, reverse=True):
        hashed = t.startswith("<") and t.endswith(">")
        alts.append(re.escape(t[:-1]) + r"(?::[0-9a-f]{12})?>" if hashed else re.escape(t))
    return re.compile("|".join(alts)) if alts else _PLACEHOLDER


def _changed_docs(run: Path, pii: dict[str, Any]) -> pl.DataFrame | None:
    """Documents the ``pii`` stage changed (``pii_count`` > 0), already redacted: from ``documents/``, else from
    the stage's own output units while the work cache holds them. Never the stage's input."""
    import polars as pl

    docs = _read(run / "documents")
    if docs is None or "pii_count" not in docs.columns:
        files = [Path(u["dir"]) / "docs.parquet" for u in pii.get("units", [])]
        frames = [pl.read_parquet(f) for f in files if f.is_file()]
        docs = pl.concat(frames, how="diagonal_relaxed") if frames else None
    if docs is None or "pii_count" not in docs.columns:
        return None
    return docs.filter(pl.col("pii_count") > 0)


def _around(value: str, pattern: re.Pattern[str], most: int) -> list[str]:
    """Up to ``most`` redacted snippets of ``value``, one around each placeholder."""
    flat = " ".join(value.split())
    return [flat[max(0, m.start() - _CONTEXT) : m.end() + _CONTEXT] for m in pattern.finditer(flat)][:most]


def show_pii(run: Path, manifest: dict[str, Any], n: int, seed: int) -> None:
    """What the ``pii`` stage replaced: counts per type, column and source, and sampled documents shown after
    redaction only (snippets around each placeholder, per column). Originals are never read: the stage's
    input may no longer exist, and this view must not show what the stage removed."""
    names = [s.get("name") if isinstance(s, dict) else None for s in manifest["stages"]]
    if "pii" not in names:
        fail("this run has no pii stage")
    pii = manifest["stages"][names.index("pii")]
    stats = pii.get("stats") or {}
    counts = {t: c for t, c in (stats.get("counts") or {}).items() if c}
    console.print(f"replacements by type: {json.dumps(counts)}")
    if stats.get("by_column"):
        console.print(f"replacements by column: {json.dumps(stats['by_column'])}")
    console.print(
        f"documents with a replacement: {stats.get('docs_with_pii', 0):,}; "
        f"dropped by the policy: {stats.get('docs_dropped', 0):,}"
    )
    recipe_stages = (manifest.get("recipe") or {}).get("stages") or []
    params = next((s.get("params") or {} for s in recipe_stages if s.get("name") == "pii"), {})
    pattern = _placeholder_pattern(params)
    changed = _changed_docs(run, pii)
    if changed is None or changed.is_empty():
        console.print("No kept document had PII replaced.")
        return
    for row in changed.sample(min(n, changed.height), seed=seed).sort("id").iter_rows(named=True):
        types = row.get("pii_types") or "{}"
        console.rule(f"[bold]{row['id']}[/] · {row['pii_count']} replacement(s) · {types}", characters="-")
        shown = False
        for col, value in row.items():
            if col in _NOT_SHOWN or not isinstance(value, str):
                continue
            for snippet in _around(value, pattern, 3):
                console.print(f"[cyan]{col}:[/] ", end="")
                console.print(snippet, markup=False, highlight=False)
                shown = True
        if not shown:
            console.print("(values masked in place: no placeholder to point at)")


# Columns that hold identities, labels or the stage's own counts: nothing to show around.
_NOT_SHOWN = {"id", "source", "lang", "group_id", "split", "pii_types", "pii_count"}


def _manifest(run: Path) -> dict[str, Any]:
    """``run``'s manifest; exit 2 when ``run`` is not a run folder or its manifest cannot be read."""
    path = run / "manifest.json"
    if not path.is_file():
        fail(f"{run} is not a run folder (no manifest.json)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        fail(f"{path} cannot be read: {err}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), list):
        fail(f"{path} is not a run manifest (no `stages` list)")
    return manifest


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
        import polars as pl

        from pipeline.report import pii_redactor

        manifest = _manifest(run)
        rejected = _read(run / "rejected")
        if stage == "pii":
            show_pii(run, manifest, n, seed)
            return
        if rejected is None:
            console.print("Nothing was rejected in this run.")
            return
        # Runs that remove PII show nothing the stage would remove, whatever the files hold.
        redact = pii_redactor(manifest)
        if stage == "dedup" and reason is None:
            show_dedup(run, rejected, n, seed, chars, redact)
            return
        if stage is None and reason is None:
            summary(rejected, redact)
            return
        rows = rejected
        if stage is not None:
            rows = rows.filter(pl.col("stage") == stage)
        if reason is not None:
            rows = rows.filter((pl.col("reason") == reason) | pl.col("reason").str.starts_with(reason))
        if rows.is_empty():
            fail(
                f"no rejected documents match stage={stage!r} reason={reason!r}; "
                f"reasons here: {', '.join(sorted(set(rejected['reason'].drop_nulls()))[:20])}"
            )
        console.print(f"{rows.height:,} matching documents; showing {min(n, rows.height)}")
        show_rejected(rows.sample(min(n, rows.height), seed=seed).sort("id"), chars, redact)
