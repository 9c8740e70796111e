"""Every built-in recipe runs on sample_data/ (no ../shared/data needed) and keeps the manifest invariant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flows.cli import SAMPLE_DATA, SAMPLE_FOLDERS
from flows.recipe import RECIPE_DIR, builtin_recipes, load_recipe
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

PUBLISHED = {"c4", "gopher", "refinedweb", "fineweb", "slimpajama", "gpt3", "ccnet", "the-stack", "default"}


def test_published_recipes_exist_and_cite_their_paper() -> None:
    assert PUBLISHED <= set(builtin_recipes())
    for name in PUBLISHED - {"default"}:
        text = (RECIPE_DIR / f"{name}.yaml").read_text()
        assert text.startswith("#") and any(str(y) in text for y in range(2019, 2025)), name
        load_recipe(name)


def _fast(name: str, tmp: Path) -> str:
    """The recipe itself, with training shortened (a test-only override): the path to run."""
    data = yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text())
    for stage in data["stages"]:
        if isinstance(stage, dict) and "train" in stage:
            stage["train"] = {**(stage["train"] or {}), "steps": 3}
        if isinstance(stage, dict) and "tokenizer" in stage:
            stage["tokenizer"] = {**(stage["tokenizer"] or {}), "vocab_size": 512}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_recipe_runs_on_sample_data(name: str, prefect_server, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    args = ["run", "--recipe", _fast(name, tmp_path), "--out", str(out)]
    for folder in SAMPLE_FOLDERS:
        args += ["--input", str(SAMPLE_DATA / folder)]
    run_cli(args, env=prefect_server, check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    for s in manifest["stages"]:
        if "docs_in" in s and s.get("docs_out") is not None and s.get("docs_rejected") is not None:
            assert s["docs_in"] == s["docs_out"] + s["docs_rejected"], s["name"]
    assert list((out / "documents").glob("*.parquet"))
    if "filter" in stages:
        assert "dropped_by_rule" in stages["filter"]["stats"]
    if "quality" in stages:
        assert stages["quality"]["docs_rejected"] > 0  # the Pareto draw turns some web pages down
    if "perplexity" in stages:
        assert sum(stages["perplexity"]["stats"]["buckets"].values()) > 0
