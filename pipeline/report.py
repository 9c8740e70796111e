"""The run report: Markdown and self-contained HTML with the figures a reviewer of a run asks for."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipeline.atomic import atomic_write, atomic_write_bytes
from pipeline.bounds import Int


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_reasons: Int = Field(25, ge=1, le=10_000, description="drop reasons listed")
    duplicate_examples: Int = Field(5, ge=0, le=1000, description="removed/kept pairs shown")
    snippet_chars: Int = Field(160, ge=1, le=100_000, description="characters of each example shown")


class Section:
    """One report section, rendered to both Markdown and HTML from the same rows."""

    def __init__(self, title: str):
        self.title = title
        self.md: list[str] = [f"## {title}", ""]
        self.html: list[str] = [f"<h2>{html.escape(title)}</h2>"]

    def text(self, line: str) -> None:
        self.md += [line, ""]
        self.html.append(f"<p>{html.escape(line)}</p>")

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:,.4g}"
            return f"{v:,}" if isinstance(v, int) else str(v)

        self.md.append("| " + " | ".join(headers) + " |")
        self.md.append("|" + "|".join("---" for _ in headers) + "|")
        for row in rows:
            self.md.append("| " + " | ".join(cell(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
        self.md.append("")
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>" for row in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def image(self, path: Path, alt: str) -> None:
        self.md += [f"![{alt}]({path.name})", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')


def _read_lengths(folder: Path, columns: list[str]) -> pl.DataFrame | None:
    """``columns`` plus ``chars`` (the text's length) of every row, read one file at a time: the texts
    themselves never sit in memory together, so the report costs memory per row, not per byte."""
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    frames = []
    for f in files:
        scan = pl.scan_parquet(f)
        have = scan.collect_schema()
        cols = [pl.col(c) if c in have else pl.lit(None, pl.String).alias(c) for c in columns]
        frames.append(scan.select(*cols, pl.col("text").str.len_chars().fill_null(0).alias("chars")).collect())
    return pl.concat(frames, how="vertical_relaxed")


def scan_texts(folder: Path) -> pl.LazyFrame | None:
    """``id, text`` of every document of a run folder's ``documents/`` or ``rejected/``, as a scan (filter it
    by id: only the wanted rows are read), or None when the folder holds no Parquet file."""
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    return pl.concat([pl.scan_parquet(f).select("id", "text") for f in files], how="vertical_relaxed")


def _stage_section(manifest: dict[str, Any]) -> Section:
    sec = Section("Documents per stage")
    rows = [
        [
            s["name"],
            s.get("docs_in", 0),
            s.get("docs_out", 0),
            s.get("docs_rejected", 0),
            s.get("seconds", 0.0),
            f"{s.get('cached_shards', 0)}/{s.get('shards', 0)}",
        ]
        for s in manifest["stages"]
    ]
    sec.table(["stage", "docs in", "docs out", "rejected", "seconds", "cached shards"], rows)
    return sec


def _source_section(
    manifest: dict[str, Any], rejected: pl.DataFrame | None, docs: pl.DataFrame | None, stage_names: list[str]
) -> Section:
    """Documents, characters and tokens left after each stage, per source.

    What is left after a stage is the final documents plus those rejected by a later stage. Tokens
    before tokenization are estimated with each source's tokens-per-character ratio in the shards.
    """
    sec = Section("Documents, characters and tokens per source after each stage")
    frames = []
    if docs is not None:
        frames.append(docs.select("source", pl.lit(None, pl.String).alias("stage"), "chars"))
    if rejected is not None:
        frames.append(rejected.select("source", "stage", "chars"))
    if not frames:
        sec.text("No documents.")
        return sec
    rows_df = pl.concat(frames, how="vertical_relaxed")
    shards = (manifest.get("outputs") or {}).get("shards")
    final_chars = dict(
        rows_df.filter(pl.col("stage").is_null()).group_by("source").agg(pl.col("chars").sum()).iter_rows()
    )
    ratio: dict[str, float] = {}
    if shards:
        for src, n in shards["splits"]["train"]["by_source"].items():
            n += shards["splits"]["val"]["by_source"].get(src, 0)
            if final_chars.get(src):
                ratio[src] = n / final_chars[src]
    rows = []
    for src in sorted(set(rows_df["source"].drop_nulls())):
        mine = rows_df.filter(pl.col("source") == src)
        row: list[Any] = [src, f"{mine.height:,}"]
        for i, _stage in enumerate(stage_names):
            left = mine.filter(pl.col("stage").is_null() | pl.col("stage").is_in(stage_names[i + 1 :]))
            chars = int(left["chars"].sum())
            cell = f"{left.height:,} / {chars / 1e6:.2f}M"
            if src in ratio:
                cell += f" / ≈{chars * ratio[src] / 1e6:.2f}M"
            row.append(cell)
        rows.append(row)
    sec.text(
        "Each cell: documents / characters / estimated tokens remaining after the stage "
        "(tokens where the run has token shards). `read` counts every input record, unreadable ones included."
    )
    sec.table(["source", "read", *stage_names], rows)
    return sec


def _reasons_section(rejected: pl.DataFrame | None, cfg: ReportConfig, redact: Redactor) -> Section:
    sec = Section("Drop reasons")
    if rejected is None:
        sec.text("Nothing was dropped.")
        return sec
    counts = (
        rejected.group_by("stage", "reason", "source")
        .len()
        .sort(["len", "stage", "reason", "source"], descending=[True, False, False, False])
    )
    rows = [[st, redact(reason, src), src, n] for st, reason, src, n in counts.head(cfg.top_reasons).iter_rows()]
    sec.table(["stage", "reason", "source", "documents"], rows)
    return sec


def _dedup_section(
    manifest: dict[str, Any], rejected: pl.DataFrame | None, run_dir: Path, cfg: ReportConfig, redact: Redactor
) -> Section | None:
    from pipeline.dedup.apply import removed_vs_kept
    from pipeline.dedup.config import STAGE
    from pipeline.dedup.summary import dedup_report_rows

    stage = next((s for s in manifest["stages"] if s["name"] == STAGE), None)
    if stage is None:
        return None
    sec = Section("Duplicate clusters")
    stats = stage.get("stats") or {}
    by_reason = stats.get("removed_by_reason") or {}
    removed = ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in sorted(by_reason.items())) or "none"
    sec.text(f"{stats.get('clusters', 0):,} clusters; documents removed: {removed}.")
    for title, headers, rows in dedup_report_rows(stats):
        sec.text(title)
        sec.table(headers, rows)
    if rejected is not None and (run_dir / "documents").is_dir():
        dups = rejected.filter(pl.col("stage") == STAGE).sort("id").head(cfg.duplicate_examples)
        pairs = removed_vs_kept(dups, scan_texts(run_dir / "documents"), scan_texts(run_dir / "rejected"))
        rows = [
            [
                r["removed_id"],
                r["reason"],
                r["kept_id"],
                _snip(r["removed_text"], cfg, redact, r["source"]),
                _snip(r["kept_text"], cfg, redact, r["source"]),
            ]
            for r in pairs.iter_rows(named=True)
        ]
        if rows:
            sec.table(["removed", "reason", "kept", "removed text", "kept text"], rows)
    return sec


def _snip(text: str | None, cfg: ReportConfig, redact: Redactor, source: str | None) -> str:
    if text is None:
        return "(kept copy removed by a later stage)"
    # Redact a margin past the cut, so that no value is cut short of recognition inside the shown part.
    flat = " ".join(text.split())[: cfg.snippet_chars + SNIP_MARGIN]
    return (redact(flat, source) or "")[: cfg.snippet_chars]


# Characters redacted past a snippet's end: more than any value but a private-key block (which its recognizer
# finds truncated too).
SNIP_MARGIN = 400

# Text (and the source of its document) -> the same text as the report may show it.
Redactor = Callable[[str | None, str | None], str | None]


def pii_redactor(manifest: dict[str, Any]) -> Redactor:
    """Where the run's recipe has a ``pii`` stage, a function redacting a string with that stage's detection and
    policy (the report and ``refinery inspect`` show nothing it would have removed, whatever the files hold);
    otherwise the identity."""
    stages = (manifest.get("recipe") or {}).get("stages") or []
    params = next((s.get("params") or {} for s in stages if isinstance(s, dict) and s.get("name") == "pii"), None)
    if params is None:
        return lambda text, source: text
    from pipeline.pii.columns import redact_columns  # presidio loads only for runs that remove PII
    from pipeline.pii.config import PiiConfig

    pii_cfg = PiiConfig(**params)

    def redact(text: str | None, source: str | None) -> str | None:
        if text is None:
            return None
        one = pl.DataFrame(
            {"text": [text], "source": [source or "other"]}, schema={"text": pl.String, "source": pl.String}
        )
        return redact_columns(one, pii_cfg)[0]["text"][0]  # the stage's own detection and policy, as a document

    return redact


def _pii_section(manifest: dict[str, Any]) -> Section | None:
    stage = next((s for s in manifest["stages"] if s["name"] == "pii"), None)
    if stage is None:
        return None
    sec = Section("PII replaced")
    stats = stage.get("stats") or {}
    sec.table(["entity type", "replacements"], sorted((stats.get("counts") or {}).items()))
    by_source = stats.get("by_source") or {}
    if by_source:
        sec.table(
            ["source", "entity type", "replacements"],
            [[s, t, n] for s, types in sorted(by_source.items()) for t, n in sorted(types.items())],
        )
    by_column = stats.get("by_column") or {}
    if by_column:
        sec.table(["column", "replacements"], sorted(by_column.items()))
    sec.text(f"Documents with at least one replacement: {stats.get('docs_with_pii', 0)}")
    return sec


def _tokens_section(manifest: dict[str, Any]) -> Section | None:
    shards = (manifest.get("outputs") or {}).get("shards")
    if not shards:
        return None
    sec = Section("Tokens")
    rows = []
    for split, info in shards["splits"].items():
        for src, n in info["by_source"].items():
            rows.append([split, src, n])
        rows.append([split, "all", info["tokens"]])
    sec.text(f"Tokenizer vocabulary: {shards['vocab_size']} (fingerprint {shards['tokenizer_fingerprint']}).")
    sec.table(["split", "source", "tokens"], rows)
    return sec


def _tokenizer_section(manifest: dict[str, Any]) -> Section | None:
    metrics = (manifest.get("outputs") or {}).get("tokenizer_metrics")
    if not metrics:
        return None
    sec = Section("Tokenizer quality on held-out documents")
    ref = metrics.get("reference")
    sec.text(
        f"Vocabulary {metrics['vocab_size']:,}, of which {metrics['vocab_used']:.1%} is used by the held-out text. "
        + (f"Reference: {ref} (tiktoken)." if ref else "No reference tokenizer installed.")
    )
    headers = ["source", "docs", "bytes/token", "tokens/word"]
    if ref:
        headers += ["reference bytes/token", "reference tokens/word"]
    rows = []
    for src, m in [*sorted(metrics["by_source"].items()), ("all", metrics["all"])]:
        row = [src, m["docs"], round(m["bytes_per_token"], 3), round(m["tokens_per_word"], 3)]
        if ref:
            row += [round(m["reference_bytes_per_token"], 3), round(m["reference_tokens_per_word"], 3)]
        rows.append(row)
    sec.table(headers, rows)
    return sec


def _training_section(run_dir: Path, report_dir: Path) -> Section | None:
    metrics_path = run_dir / "model" / "metrics.json"
    if not metrics_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text())
    sec = Section("Training")
    sec.text(
        f"Parameters: {metrics.get('params', 0):,}; tokens seen: {metrics.get('tokens_seen', 0):,}; "
        f"final validation loss: {metrics.get('final_val_loss', float('nan')):.4f}."
    )
    per_source = metrics.get("final_val_per_source") or {}
    sec.table(["source", "validation loss"], sorted(per_source.items()))
    mixture = metrics.get("mixture") or {}
    if mixture:
        sec.text("Training mixture (sources repeated more than 4 epochs are flagged: diminishing returns).")
        sec.table(
            ["source", "tokens", "available", "epochs", "flag"],
            [
                [s, m["tokens"], m["available"], m["epochs"], "> 4 epochs" if m["flagged"] else ""]
                for s, m in sorted(mixture.items())
            ],
        )
    png = report_dir / "loss_curve.png"
    plot_loss(metrics, png)
    sec.image(png, "training and validation loss")
    return sec


def plot_loss(metrics: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    train = metrics.get("train") or []
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train", linewidth=1)
    val = metrics.get("val") or []
    ax.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="validation (all)")
    sources = sorted({s for r in val for s in (r.get("per_source") or {})})
    for src in sources:
        pts = [(r["step"], r["per_source"][src]) for r in val if src in (r.get("per_source") or {})]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", label=f"validation ({src})", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


_CSS = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em;"
    "text-align:left;font-size:.9em}th{background:#f3f3f3}img{max-width:100%}"
)


def write_report(run_dir: Path, manifest: dict[str, Any], cfg: ReportConfig) -> Path:
    """Write ``report/report.md``, ``report/index.html`` (images embedded) and ``report/loss_curve.png``."""
    report_dir = run_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    rejected = _read_lengths(run_dir / "rejected", ["id", "source", "stage", "reason", "duplicate_of"])
    docs = _read_lengths(run_dir / "documents", ["id", "source"])
    doc_stages = [s["name"] for s in manifest["stages"] if s["name"] not in ("tokenizer", "shards", "train", "report")]
    redact = pii_redactor(manifest)
    sections = [
        _stage_section(manifest),
        _source_section(manifest, rejected, docs, doc_stages),
        _reasons_section(rejected, cfg, redact),
        _dedup_section(manifest, rejected, run_dir, cfg, redact),
        _pii_section(manifest),
        _tokens_section(manifest),
        _tokenizer_section(manifest),
        _training_section(run_dir, report_dir),
    ]
    sections = [s for s in sections if s is not None]
    recipe = manifest["recipe"]
    title = f"Refinery run report: recipe `{recipe['name']}`"
    intro = f"Code version {manifest['code_version']}; {manifest['outputs']['documents']:,} documents kept."
    write_pages(report_dir, title, intro, sections)
    return report_dir


def write_pages(report_dir: Path, title: str, intro: str, sections: list[Section]) -> None:
    """``report.md`` and a self-contained ``index.html`` from the same sections."""
    md = [f"# {title}", "", intro, ""] + [line for s in sections for line in s.md]
    atomic_write_bytes(report_dir / "report.md", "\n".join(md).encode())
    body = "".join("".join(s.html) for s in sections)
    plain = title.replace("`", "")  # Markdown code marks are for report.md only
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(plain)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(plain)}</h1><p>{html.escape(intro)}</p>"
        f"{body}</body></html>"
    )
    atomic_write_bytes(report_dir / "index.html", page.encode())
