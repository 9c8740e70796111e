"""Prefect artifacts of a curation run: what the UI shows for it.

A progress artifact moves as stages finish; each stage adds a table artifact with its figures
(documents in/out/rejected, seconds, cached shards); the end of the run adds a Markdown summary.
Artifacts need a flow run and an API: outside one (a task's ``.fn()`` in tests) these do nothing.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext


def _key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


_MAX_ROWS = 40  # a stage's table shows its headline counts, not every per-file figure


def _flat_figures(stats: dict[str, Any], prefix: str = "", depth: int = 2) -> list[dict[str, Any]]:
    """Numeric stage statistics as (figure, value) rows: ``dropped_by_rule.gopher_word_count`` -> 12."""
    rows: list[dict[str, Any]] = []
    for k, v in sorted(stats.items()):
        name = f"{prefix}{k}"
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int | float):
            rows.append({"figure": name, "value": v})
        elif isinstance(v, dict) and depth > 1:
            rows += _flat_figures(v, f"{name}.", depth - 1)
    return rows


class RunArtifacts:
    """Artifacts of one ``curate`` flow run, keyed by the recipe name so the UI groups runs of a recipe."""

    def __init__(self, recipe: str, n_stages: int) -> None:
        self.active = FlowRunContext.get() is not None
        self.recipe = recipe
        self.n_stages = max(n_stages, 1)
        self.done = 0
        self.progress_id: UUID | None = None
        if self.active:
            self.progress_id = create_progress_artifact(
                0.0, key=_key("refinery", recipe, "progress"), description=f"Stages done of recipe {recipe}"
            )

    def stage(self, summary: dict[str, Any]) -> None:
        if not self.active:
            return
        self.done += 1
        rows: list[dict[str, Any]] = [
            {"figure": k, "value": summary.get(k)} for k in ("docs_in", "docs_out", "docs_rejected", "seconds")
        ]
        rows.append(
            {"figure": "cached shards", "value": f"{summary.get('cached_shards', 0)}/{summary.get('shards', 0)}"}
        )
        rows += _flat_figures(summary.get("stats") or {})[:_MAX_ROWS]
        create_table_artifact(
            rows,
            key=_key("refinery", self.recipe, "stage", summary["name"]),
            description=f"Stage {summary['name']}: documents in, out and rejected",
        )
        if self.progress_id is not None:
            update_progress_artifact(self.progress_id, min(100.0, 100.0 * self.done / self.n_stages))

    def summary(self, manifest: dict[str, Any], out: str) -> None:
        if not self.active:
            return
        lines = [
            f"# Refinery run: recipe `{self.recipe}`",
            "",
            f"Output: `{out}` — code version `{manifest.get('code_version')}`",
            "",
            "| stage | docs in | docs out | rejected | seconds | cached shards |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for s in manifest["stages"]:
            lines.append(
                f"| {s['name']} | {s['docs_in']:,} | {s['docs_out']:,} | {s['docs_rejected']:,} | "
                f"{s['seconds']:.1f} | {s.get('cached_shards', 0)}/{s.get('shards', 0)} |"
            )
        outputs = manifest.get("outputs", {})
        lines += ["", f"Documents kept: {outputs.get('documents', 0):,}; rejected: {outputs.get('rejected', 0):,}."]
        shards = outputs.get("shards", {}).get("splits", {})
        if shards:
            lines.append("Tokens: " + ", ".join(f"{k} {v.get('tokens', 0):,}" for k, v in sorted(shards.items())) + ".")
        create_markdown_artifact("\n".join(lines), key=_key("refinery", self.recipe, "summary"))
        if self.progress_id is not None:
            update_progress_artifact(self.progress_id, 100.0)
