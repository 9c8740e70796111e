"""Ablation plans: built-ins load, arms expand, bad plans are errors naming the bad key (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.ablation_plan import PlanError, builtin_plans, load_plan, parse_plan
from flows.cli import app

QUALITY_AXIS = {"quality": [{"name": "none"}, {"name": "heuristic", "stages": ["filter"]}]}


def test_builtin_plans_load() -> None:
    assert set(builtin_plans()) >= {"scale", "quality", "diversity", "dedup"}
    for name in builtin_plans():
        plan = load_plan(name)
        assert len(plan.seeds) >= 3
        arms = plan.arms(sources=["book", "code", "web"])
        assert plan.baseline_arm(arms).name in [a.name for a in arms]
    quality = load_plan("quality")
    assert quality.baseline == "none"
    assert [s["name"] for s in quality.axes.quality[2].stages] == ["filter", "quality"]
    assert quality.axes.quality[2].stages[1]["params"]["threshold"] == 0.5  # defaults filled in
    scale = load_plan("scale")
    assert [a.fraction for a in scale.arms(None)] == [0.125, 0.25, 0.5, 1.0]


def test_dumped_plan_parses_back() -> None:
    plan = load_plan("quality")
    assert parse_plan(plan.model_dump(mode="json")) == plan


def test_cross_of_axes_and_leave_one_out() -> None:
    plan = parse_plan(
        {
            "axes": {
                **QUALITY_AXIS,
                "diversity": {"mixtures": [{"name": "flat", "weights": {"web": 1, "book": 1}}], "leave_one_out": True},
                "scale": {"fractions": [0.5, 1.0]},
            },
            "baseline": "heuristic+no-web+1",
        }
    )
    arms = plan.arms(sources=["book", "web"])
    assert len(arms) == 2 * 4 * 2  # quality x (natural, flat, no-book, no-web) x scale
    arm = next(a for a in arms if a.name == "heuristic+no-web+1")
    assert arm.levels == {"quality": "heuristic", "diversity": "no-web", "scale": "1"}
    assert arm.exclude == "web" and arm.fraction == 1.0 and [s["name"] for s in arm.stages] == ["filter"]
    assert plan.baseline_arm(arms) is arm
    flat = next(a for a in arms if a.name == "none+flat+1/2")
    assert flat.weights == {"web": 1, "book": 1} and flat.fraction == 0.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"axes": QUALITY_AXIS, "trian": {}}, "unknown key 'trian'"),
        ({"axes": {"qualty": []}}, "unknown axis 'qualty'"),
        ({"axes": {}}, "name at least one axis"),
        ({"axes": QUALITY_AXIS, "baseline": "unfiltered"}, "no arm named 'unfiltered'"),
        ({"axes": QUALITY_AXIS, "seeds": [0, 1]}, "at least 3 seeds"),
        ({"axes": QUALITY_AXIS, "train": {"presett": "nano"}}, "train.presett: unknown key"),
        ({"axes": QUALITY_AXIS, "train": {"preset": "huge"}}, "unknown preset 'huge'"),
        ({"axes": {"quality": [{"name": "a", "stages": [{"filter": {"min_wrds": 3}}]}]}}, "min_wrds"),
        ({"axes": {"quality": [{"name": "a", "stages": ["filtr"]}]}}, "unknown stage 'filtr'"),
        ({"axes": {"quality": [{"name": "a", "stages": ["train"]}]}}, "stage 'train' cannot be part"),
        ({"axes": {"quality": [{"name": "a"}, {"name": "a"}]}}, "named twice: a"),
        ({"axes": {"quality": [{"name": "a+b"}]}}, "'a+b'"),
        ({"axes": {"scale": {"fractions": [0.5], "tokens": [100]}}}, "exactly one of"),
        ({"axes": {"scale": {"fractions": [2.0]}}}, "fractions must be <= 1"),
        ({"axes": {"diversity": {"mixtures": [{"name": "m", "weights": {"web": 0}}]}}}, "at least one > 0"),
        ({"axes": QUALITY_AXIS, "tokenizer": {"vocab": 10}}, "tokenizer: vocab"),
        ({"axes": QUALITY_AXIS, "curation": [{"langid": {"keeep": ["en"]}}]}, "keeep"),
        ({"axes": {"scale": {"fractions": [0.3333, 0.33333]}}}, "arm names collide"),
        (
            {"axes": {"diversity": {"natural": True, "mixtures": [{"name": "natural", "weights": {"web": 1}}]}}},
            "arm names collide: natural",
        ),
    ],
)
def test_bad_plans_name_the_problem(data: dict, message: str) -> None:
    with pytest.raises(PlanError, match="invalid plan") as err:
        parse_plan(data)
    assert message in str(err.value)


def test_unknown_plan_name_lists_builtins() -> None:
    with pytest.raises(PlanError, match="built-in: dedup, diversity, quality, scale"):
        load_plan("qualityy")


def test_cli_rejects_bad_plan_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"axes": QUALITY_AXIS, "baseline": "nope"}))
    result = CliRunner().invoke(app, ["ablate", "--plan", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no arm named 'nope'" in result.output
    result = CliRunner().invoke(app, ["ablate", "--plan", "nosuchplan"])
    assert result.exit_code == 2 and "built-in" in result.output
    result = CliRunner().invoke(app, ["ablate", "--plan", "quality", "--seeds", "2"])
    assert result.exit_code == 2 and "3" in result.output  # fewer than 3 seeds is refused before anything runs
    assert not (tmp_path / "out").exists()


def test_cli_lists_plans() -> None:
    result = CliRunner().invoke(app, ["plans"])
    assert result.exit_code == 0
    assert "quality: 5 arms x 3 seeds" in result.output and "scale: 4 arms" in result.output


def test_leave_one_out_of_a_missing_source_is_an_error() -> None:
    from flows.ablate import _mixture
    from flows.ablation_plan import Arm

    have = {"web": 5000, "books": 9000}
    weights, _ = _mixture(Arm(name="no-web", levels={}, exclude="web"), have, min_tokens=100)
    assert weights == {"books": 9000.0}
    with pytest.raises(PlanError, match="leaves out source 'book'.*sources: books, web"):
        _mixture(Arm(name="no-book", levels={}, exclude="book"), have, min_tokens=100)
