"""Discoverable config: `refinery explain STAGE` lists every parameter, `refinery schema` validates recipe files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.recipe import builtin_recipes, load_recipe
from flows.recipe_schema import explain, recipe_json_schema
from flows.stages import STAGES

jsonschema = pytest.importorskip("jsonschema")


@pytest.mark.parametrize("stage", list(STAGES))
def test_explain_lists_every_parameter(stage: str) -> None:
    rows = explain(stage)
    assert [r["parameter"] for r in rows] == list(STAGES[stage].config_cls().model_fields)
    assert all(r["type"] and r["default"] for r in rows)


def test_explain_shows_bounds_and_descriptions() -> None:
    threshold = next(r for r in explain("dedup") if r["parameter"] == "threshold")
    assert threshold["bounds"] == "> 0.0, < 1.0" and threshold["default"] == "0.8" and threshold["description"]
    result = CliRunner().invoke(app, ["explain", "dedup"])
    assert result.exit_code == 0 and "threshold" in result.output


@pytest.mark.parametrize("name", builtin_recipes())
def test_every_builtin_recipe_validates_against_the_schema(name: str) -> None:
    jsonschema.validate(load_recipe(name).as_recipe_file(), recipe_json_schema())


@pytest.mark.parametrize(
    "recipe",
    [
        {"stages": ["ingest", "nosuchstage"]},
        {"stages": ["ingest", {"dedup": {"threshold": "high"}}]},
        {"stages": ["ingest", {"dedup": {"threshold": 1.5}}]},
        {"stages": ["ingest", {"dedup": {"no_such_param": 1}}]},
        {"stages": []},
        {"stages": ["ingest"], "unknown_key": 1},
    ],
)
def test_the_schema_rejects_what_the_recipe_loader_rejects(recipe: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(recipe, recipe_json_schema())


def test_schema_command_writes_the_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--out", str(tmp_path / "recipe.schema.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "recipe.schema.json").read_text()) == recipe_json_schema()
