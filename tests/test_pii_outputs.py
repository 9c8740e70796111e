"""What a run shows about its documents holds no personal data: the report (duplicate examples, drop reasons) and
`refinery inspect` (the pii view shows redacted text only, never the stage's input; the other views redact too)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from flows.commands.inspect import register
from pipeline.pii.config import PiiConfig
from pipeline.report import ReportConfig, pii_redactor, write_report
from pipeline.schema import to_rejected

RAW = ["ann.smith@example.com", "555-0134", "bob [at] example [dot] org", "8.8.4.4"]
TEXT = "Kept copy: write to ann.smith@example.com or call (415) 555-0134; bob [at] example [dot] org knows."


def _run_folder(root: Path, with_pii: bool = True, pii_params: dict | None = None) -> tuple[Path, dict]:
    params = PiiConfig(**(pii_params or {})).model_dump(mode="json")
    stages = [{"name": "ingest", "params": {}}, {"name": "dedup", "params": {}}]
    if with_pii:
        stages.append({"name": "pii", "params": params})
    manifest = {
        "code_version": "test",
        "recipe": {"name": "t", "stages": stages},
        "stages": [
            {"name": "ingest", "docs_in": 3, "docs_out": 2, "docs_rejected": 1, "stats": {}},
            {"name": "dedup", "docs_in": 2, "docs_out": 1, "docs_rejected": 1, "stats": {"clusters": 1}},
            {
                "name": "pii",
                "docs_in": 1,
                "docs_out": 1,
                "stats": {"counts": {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1}, "by_column": {"text": 3},
                          "docs_with_pii": 1, "docs_dropped": 0},
                "units": [{"index": 0, "dir": str(root / "cache" / "gone")}],  # pruned: never read
            },
        ],
        "outputs": {"documents": 1},
    }  # fmt: skip
    (root / "documents").mkdir(parents=True)
    (root / "rejected").mkdir()
    kept = "Kept copy: write to <EMAIL> or call <PHONE>; <EMAIL> knows."
    pl.DataFrame(
        {"id": ["k1"], "text": [kept], "source": ["web"], "url": ["https://example.com/?e=<EMAIL>"],
         "path": ["in/a.html"], "meta": ['{"title": "Contact <EMAIL>"}'], "pii_count": [4],
         "pii_types": ['{"EMAIL_ADDRESS": 3, "PHONE_NUMBER": 1}']}
    ).write_parquet(root / "documents" / "part-0.parquet")  # fmt: skip
    rows = pl.DataFrame(
        {"id": ["r1", "r2"], "source": ["web", "web"], "url": [None, None], "path": ["in/b.html", "in/c.html"],
         "text": [TEXT, "Blocked host 8.8.4.4 said ann.smith@example.com twice."],
         "reason": ["exact_duplicate", "bad host 8.8.4.4"], "duplicate_of": ["k1", None]},
        schema_overrides={"url": pl.String},
    )  # fmt: skip
    rejected = pl.concat([to_rejected(rows.head(1), "dedup"), to_rejected(rows.tail(1), "filter")])
    rejected.write_parquet(root / "rejected" / "part-0.parquet")
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root, manifest


def test_report_redacts_duplicate_examples_and_reasons(tmp_path: Path) -> None:
    run, manifest = _run_folder(tmp_path / "run")
    report = write_report(run, manifest, ReportConfig())
    for page in ("report.md", "index.html"):
        body = (report / page).read_text(encoding="utf-8")
        assert [v for v in RAW if v in body] == [], page
        assert "write to &lt;EMAIL&gt;" in body or "write to <EMAIL>" in body
        assert "bad host" in body
    assert "| column | replacements |" in (report / "report.md").read_text(encoding="utf-8")


def test_report_of_a_run_without_pii_shows_text_as_is(tmp_path: Path) -> None:
    run, manifest = _run_folder(tmp_path / "run", with_pii=False)
    body = (write_report(run, manifest, ReportConfig()) / "report.md").read_text(encoding="utf-8")
    assert "ann.smith@example.com" in body  # the recipe did not ask for PII removal
    assert pii_redactor(manifest)("a@example.com", "web") == "a@example.com"


def test_redactor_follows_the_recipe_policy(tmp_path: Path) -> None:
    _, manifest = _run_folder(tmp_path / "run", pii_params={"policy": "hash", "apply_to_sources": ["web"]})
    redact = pii_redactor(manifest)
    assert redact("mail a@example.com", "web").startswith("mail <EMAIL:")
    assert redact("mail a@example.com", "book") == "mail a@example.com"
    assert redact(None, "web") is None


def _inspect(run: Path, *args: str) -> str:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, [str(run), *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_inspect_pii_shows_redacted_snippets_only(tmp_path: Path) -> None:
    run, _ = _run_folder(tmp_path / "run")
    out = _inspect(run, "--stage", "pii")
    assert [v for v in RAW if v in out] == []
    assert '"EMAIL_ADDRESS": 2' in out and "by column" in out
    assert "text: Kept copy: write to <EMAIL> or call <PHONE>" in out
    assert "url: https://example.com/?e=<EMAIL>" in out and "meta: " in out


def test_inspect_pii_with_hash_and_mask_policies(tmp_path: Path) -> None:
    run, manifest = _run_folder(tmp_path / "run", pii_params={"policy": "hash"})
    docs = pl.read_parquet(run / "documents" / "part-0.parquet")
    docs.with_columns(pl.lit("mail <EMAIL:1f0c9a2b7e4d> now").alias("text")).write_parquet(
        run / "documents" / "part-0.parquet"
    )
    assert "text: mail <EMAIL:1f0c9a2b7e4d> now" in _inspect(run, "--stage", "pii")
    docs.with_columns(pl.lit("mail ****@*******.*** now").alias("text"), pl.lit(None, pl.String).alias("url"),
                      pl.lit("{}").alias("meta")).write_parquet(run / "documents" / "part-0.parquet")  # fmt: skip
    assert "values masked in place" in _inspect(run, "--stage", "pii")


@pytest.mark.parametrize("args", [(), ("--stage", "filter"), ("--stage", "dedup"), ("--reason", "bad host")])
def test_other_inspect_views_redact_too(tmp_path: Path, args: tuple[str, ...]) -> None:
    run, _ = _run_folder(tmp_path / "run")
    out = _inspect(run, *args)
    assert [v for v in RAW if v in out] == []
