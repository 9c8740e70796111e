"""Recipe validation: clear errors that name the offender, prerequisites, seeds, built-ins."""

from __future__ import annotations

import pytest

from flows.recipe import RecipeError, builtin_recipes, load_recipe, parse_recipe
from tests.conftest import DEFAULT_STAGES, run_cli


def test_builtin_default_has_every_stage_in_order():
    rec = load_recipe("default")
    assert [s.name for s in rec.stages] == DEFAULT_STAGES
    assert "default" in builtin_recipes()


def test_unknown_stage_is_named():
    with pytest.raises(RecipeError, match="unknown stage 'fliter'"):
        parse_recipe({"stages": ["ingest", "fliter"]})


def test_unknown_key_is_named():
    with pytest.raises(RecipeError, match=r"langid.*kep"):
        parse_recipe({"stages": ["ingest", {"langid": {"kep": ["en"]}}]})


def test_wrong_type_is_named():
    with pytest.raises(RecipeError, match=r"dedup.*threshold"):
        parse_recipe({"stages": ["ingest", {"dedup": {"threshold": "high"}}]})


def test_unknown_top_level_key():
    with pytest.raises(RecipeError, match="stagse"):
        parse_recipe({"stages": ["ingest"], "stagse": []})


@pytest.mark.parametrize(
    "stages, message",
    [
        (["langid", "ingest"], "first stage"),
        (["ingest", "tokenizer", "filter"], "cannot come after"),
        (["ingest", "filter", "filter"], "listed twice"),
        ([], "non-empty"),
    ],
)
def test_bad_order(stages, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe({"stages": stages})


def test_train_alone_pulls_in_tokenizer_and_shards():
    rec = parse_recipe({"stages": ["ingest", {"train": {"steps": 3}}]})
    assert [s.name for s in rec.stages] == ["ingest", "tokenizer", "shards", "train"]
    assert [s.implicit for s in rec.stages] == [False, True, True, False]


def test_seed_applies_where_not_set_explicitly():
    rec = parse_recipe({"seed": 7, "stages": ["ingest", {"dedup": {"seed": 3}}, "tokenizer", "shards"]})
    assert rec.stage("dedup").config.seed == 3
    assert rec.stage("tokenizer").config.seed == 7
    assert rec.stage("shards").config.seed == 7


def test_recipe_file_not_found_lists_builtins(tmp_path):
    with pytest.raises(RecipeError, match="built-in"):
        load_recipe(str(tmp_path / "nope.yaml"))


def test_invalid_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [ingest\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(bad))


def test_cli_bad_recipe_exits_2(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("stages:\n  - ingest\n  - frobnicate\n")
    data = tmp_path / "data"
    data.mkdir()
    proc = run_cli(["run", "--recipe", str(bad), "--input", str(data), "--out", str(tmp_path / "o")], env=None)
    assert proc.returncode == 2
    assert "frobnicate" in proc.stderr


def test_cli_missing_input_exits_2(tmp_path):
    proc = run_cli(["run", "--input", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], env=None)
    assert proc.returncode == 2
    assert "missing" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", builtin_recipes())
def test_show_recipe_output_is_a_valid_recipe_that_round_trips(name: str) -> None:
    import yaml
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["show-recipe", name])
    assert result.exit_code == 0, result.output
    again = parse_recipe(yaml.safe_load(result.output))
    original = load_recipe(name)
    assert [(s.name, s.config) for s in again.stages] == [(s.name, s.config) for s in original.stages]
    assert (again.name, again.description, again.seed) == (original.name, original.description, original.seed)
