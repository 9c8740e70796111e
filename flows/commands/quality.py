"""`refinery preview`, `refinery train-quality`, `refinery train-lm`: try thresholds, train the models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from flows.cli_options import error_text, existing_paths, fail, output_file

if TYPE_CHECKING:  # polars loads when a command runs, not for `refinery --help`
    import polars as pl

console = Console()


def _rule_for(stat: str) -> dict[str, Any] | None:
    """The rule reading ``stat`` (its op says which side is dropped, its family what to compute)."""
    from pipeline.filters.stage import FAMILIES, FilterConfig, rule_table

    for rule in rule_table(FilterConfig(families=list(FAMILIES))):
        if rule["stat"] == stat and rule["op"] != "flag":
            return rule
    return None


def preview_table(docs: pl.DataFrame, stat: str, op: str, thresholds: list[float]) -> pl.DataFrame:
    """Per source and candidate threshold: documents and whitespace-separated words that would go."""
    import polars as pl

    words = pl.col("text").fill_null("").str.count_matches(r"\S+")
    d = docs.select("source", pl.col(stat).cast(pl.Float64).alias("v"), words.alias("w"))
    rows = []
    for src in sorted(d["source"].unique().drop_nulls().to_list()):
        s = d.filter(pl.col("source") == src)
        judged = s.filter(pl.col("v").is_not_null())
        n_docs, n_words = s.height, int(s["w"].sum())
        for t in thresholds:
            removed = pl.col("v") < t if op == "<" else (pl.col("v") <= t if op == "<=" else pl.col("v") > t)
            if op == ">=":
                removed = pl.col("v") >= t
            gone = judged.filter(removed)
            rows.append(
                {
                    "source": src,
                    "threshold": t,
                    "docs": n_docs,
                    "docs_removed": gone.height,
                    "docs_removed_frac": gone.height / max(n_docs, 1),
                    "words": n_words,
                    "words_removed": int(gone["w"].sum()),
                    "words_removed_frac": int(gone["w"].sum()) / max(n_words, 1),
                }
            )
    return pl.DataFrame(rows)


def register(app: typer.Typer) -> None:
    @app.command()
    def preview(
        run_dir: Annotated[Path, typer.Argument(help="a run folder (DIR/documents/*.parquet)")],
        stat: Annotated[str, typer.Option("--stat", help="statistic column, e.g. gopher_mean_word_length")],
        at: Annotated[str | None, typer.Option("--at", help="comma-separated thresholds to try")] = None,
        op: Annotated[str | None, typer.Option("--op", help="'<', '<=', '>' or '>=': which side is dropped")] = None,
    ) -> None:
        """Print, per source, how many documents and words each candidate threshold would remove.

        The statistic is read from the kept documents; a statistic the run did not compute (its rule
        family was off) is computed now with the published defaults."""
        import polars as pl
        from rich.table import Table

        from pipeline.filters.stage import FAMILIES, STAT_COLUMNS, FilterConfig, compute_stats

        try:  # arguments first, before any file is read
            given = [float(x) for x in (at or "").split(",") if x.strip()]
        except ValueError:
            fail(f"--at expects comma-separated numbers, got {at!r}")
        if op is not None and op not in ("<", "<=", ">", ">="):
            fail("--op must be one of <, <=, >, >=")
        if not run_dir.is_dir():
            fail(f"{run_dir} is not a run folder")
        files = sorted((run_dir / "documents").glob("*.parquet"))
        if not files:
            fail(f"no documents in {run_dir / 'documents'}")
        docs = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
        rule = _rule_for(stat)
        if stat not in docs.columns or docs[stat].null_count() == docs.height:
            if stat not in STAT_COLUMNS and stat not in ("quality_score", "perplexity"):
                fail(f"unknown statistic {stat!r}; known: {', '.join(STAT_COLUMNS)}")
            if stat in STAT_COLUMNS:  # only the owning family, so no other family rewrites the text first
                fams = [rule["family"]] if rule else list(FAMILIES)
                stats = compute_stats(docs, FilterConfig(families=fams))
                docs = docs.with_columns(stats[stat])
        if stat not in docs.columns:
            fail(f"statistic {stat!r} is not in this run's documents")
        direction = op or (str(rule["op"]) if rule else ">")
        if direction not in ("<", "<=", ">", ">="):
            fail("--op must be one of <, <=, >, >=")
        if at:
            thresholds = given
        else:  # quantiles on the dropping side: what 1%, 5%, 10%, 25% of the documents would cost
            v = docs[stat].cast(pl.Float64).drop_nulls()
            qs = (0.01, 0.05, 0.10, 0.25) if direction.startswith("<") else (0.99, 0.95, 0.90, 0.75)
            thresholds = sorted({round(float(v.quantile(q, "nearest")), 6) for q in qs}) if len(v) else []
        table = preview_table(docs, stat, direction, thresholds)
        out = Table(title=f"{stat}: documents dropped where value {direction} threshold ({run_dir})")
        for col in ("source", "threshold", "docs removed", "% docs", "words removed", "% words"):
            out.add_column(col, justify="right" if col != "source" else "left")
        for r in table.iter_rows(named=True):
            out.add_row(
                r["source"],
                f"{r['threshold']:g}",
                f"{r['docs_removed']:,} / {r['docs']:,}",
                f"{100 * r['docs_removed_frac']:.1f}",
                f"{r['words_removed']:,} / {r['words']:,}",
                f"{100 * r['words_removed_frac']:.1f}",
            )
        console.print(out)

    @app.command("train-quality")
    def train_quality_cmd(
        positive: Annotated[
            list[Path], typer.Option("--positive", help="reference text: JSONL, Parquet, .txt(.gz), folders")
        ],
        negative: Annotated[list[Path], typer.Option("--negative", help="raw web text (JSONL with text or html)")],
        out: Annotated[Path, typer.Option("--out", help="model file (.ftz quantized, .bin otherwise)")] = Path(
            "pipeline/models/quality.ftz"
        ),
        epoch: int = 10,
        seed: int = 0,
    ) -> None:
        """Train the fastText quality classifier; writes OUT and OUT.json (training-data fingerprint)."""
        from pipeline.quality.classifier import TrainQualityConfig, train_quality

        existing_paths([*positive, *negative])
        output_file(out, "--out")
        try:
            cfg = TrainQualityConfig(epoch=epoch, seed=seed, quantize=out.suffix == ".ftz")
            meta = train_quality(positive, negative, out, cfg)
        except ValueError as err:  # a setting out of its bounds, or no usable text in one class
            fail(error_text(err))
        console.print(
            f"wrote {out} ({meta['bytes'] / 1e6:.2f} MB, {meta['examples_per_class']} examples per class, "
            f"training data sha256 {meta['training_data_sha256'][:16]}...)"
        )

    @app.command("train-lm")
    def train_lm_cmd(
        reference: Annotated[list[Path], typer.Option("--reference", help="reference text (e.g. WikiText)")],
        calibrate: Annotated[
            list[Path], typer.Option("--calibrate", help="text whose perplexity terciles give the bucket cut-offs")
        ] = [],  # noqa: B006
        out: Annotated[Path, typer.Option("--out")] = Path("pipeline/models/ppl_bigram.npz"),
    ) -> None:
        """Train the hashed word-bigram LM used by the `perplexity` stage."""
        from pipeline.quality.classifier import read_texts
        from pipeline.quality.perplexity import train_lm

        existing_paths([*reference, *calibrate])
        output_file(out, "--out")
        texts = read_texts(reference)
        if not texts:
            fail("no reference text found")
        meta = train_lm(texts, out, read_texts(calibrate) if calibrate else None)
        console.print(
            f"wrote {out}: {meta['tokens']:,} tokens, cut-offs {meta['cutoffs']}, "
            f"training data sha256 {meta['training_data_sha256'][:16]}..."
        )
