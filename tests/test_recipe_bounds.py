"""Every numeric parameter of every stage (and of ablation plans) has bounds, and a recipe that breaks one
fails before any work with a message that names the stage and the key (issue #15).

The cases are generated from the configs themselves (the STAGES registry and each field's constraints),
so a new field is covered as soon as it exists, and ``test_every_numeric_field_has_a_bound`` fails for a
field without one.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types as at
import pytest
import yaml
from pydantic import BaseModel, Strict
from pydantic.fields import FieldInfo

from flows.ablation_plan import AblationPlan, PlanError, builtin_plans, load_plan, parse_plan
from flows.recipe import RecipeError, builtin_recipes, load_recipe
from flows.stages import STAGES
from tests.conftest import run_cli

# Bounds a model validator enforces instead of a field constraint, each with where it is checked.
VALIDATOR_BOUNDED = {
    "MixtureSpec.weights": "MixtureSpec._one_of: >= 0, at least one > 0 (its message is pinned by test_mixture)",
    "MixtureSpec.token_budget": "MixtureSpec._one_of: >= 0, at least one > 0",
}
# Nested configs need these siblings to be valid, so that the one bad value is the only error.
NESTED_BASE: dict[str, dict[str, Any]] = {"MixtureSpec": {"weights": {"web": 1.0}}}


_BOUND_TYPES = {"ge": at.Ge, "gt": at.Gt, "le": at.Le, "lt": at.Lt}


@dataclass
class Leaf:
    """One number a config holds: a field, or an element, key or value inside one."""

    owner: str  # "Class.field"
    path: tuple[Any, ...]  # steps inside the field: ("value",), ("key",), ("item", i, n), ("field", name)
    kind: type  # int or float
    bounds: dict[str, float] = field(default_factory=dict)  # ge / gt / le / lt
    strict: bool = False


def _numeric_leaves(annotation: Any, owner: str, meta: list[Any], path: tuple[Any, ...] = ()) -> list[Leaf]:
    """The int/float leaves of a type, with the constraints that apply to each."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        extra = [m for a in args[1:] for m in (a.metadata if isinstance(a, FieldInfo) else [a])]
        return _numeric_leaves(args[0], owner, [*meta, *extra], path)
    if origin in (typing.Union, types.UnionType):  # X | None: the field's constraints apply to X
        return [leaf for a in args if a is not type(None) for leaf in _numeric_leaves(a, owner, meta, path)]
    if origin in (list, set, frozenset):
        return _numeric_leaves(args[0], owner, [], (*path, ("item", 0, 1)))
    if origin is tuple:
        n = len(args)
        return [leaf for i, a in enumerate(args) for leaf in _numeric_leaves(a, owner, [], (*path, ("item", i, n)))]
    if origin is dict:
        keys = _numeric_leaves(args[0], owner, [], (*path, ("key",)))
        return [*keys, *_numeric_leaves(args[1], owner, [], (*path, ("value",)))]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [
            leaf
            for name, info in annotation.model_fields.items()
            for leaf in _numeric_leaves(
                info.annotation, f"{annotation.__name__}.{name}", list(info.metadata), (*path, ("field", name))
            )
        ]
    if annotation in (int, float):
        bounds = {k: getattr(m, k) for m in meta for k, t in _BOUND_TYPES.items() if isinstance(m, t)}
        return [Leaf(owner, path, annotation, bounds, any(isinstance(m, Strict) and m.strict for m in meta))]
    return []  # str, bool, Literal, ...


def _field_leaves(cls: type[BaseModel]) -> list[tuple[str, Leaf]]:
    return [
        (name, leaf)
        for name, info in cls.model_fields.items()
        for leaf in _numeric_leaves(info.annotation, f"{cls.__name__}.{name}", list(info.metadata))
    ]


def _configs() -> list[tuple[str, type[BaseModel]]]:
    return [(name, info.config_cls()) for name, info in STAGES.items()] + [("ablation plan", AblationPlan)]


# --- every numeric field has a bound ----------------------------------------------------------------


def test_every_numeric_field_has_a_bound() -> None:
    unbounded = sorted(
        {
            leaf.owner + "".join(f"[{p[0]}]" for p in leaf.path if p[0] != "field")
            for _, cls in _configs()
            for _, leaf in _field_leaves(cls)
            if not leaf.bounds and leaf.owner not in VALIDATOR_BOUNDED
        }
    )
    assert not unbounded, f"numeric fields without ge/gt/le/lt: {unbounded}"


def test_the_leaf_walk_sees_nested_and_container_numbers() -> None:
    """Guard the meta-test itself: it must look inside Optional, tuples, dicts and nested models."""
    owners = {leaf.owner for _, cls in _configs() for _, leaf in _field_leaves(cls)}
    assert {"PerplexityConfig.cutoffs", "FilterConfig.max_top_ngram_frac", "MixtureSpec.max_epochs"} <= owners
    assert {"TrainSettings.batch_size", "EvalSettings.max_doc_chars", "MixtureLevel.weights"} <= owners


# --- every bound is enforced when a recipe is loaded, naming the key ---------------------------------


def _bad_values(leaf: Leaf) -> list[tuple[str, Any]]:
    b, is_int = leaf.bounds, leaf.kind is int
    one = 1 if is_int else 1.0
    out: list[tuple[str, Any]] = []
    if "ge" in b:
        out.append(("below", b["ge"] - one))
    if "gt" in b:
        out.append(("at-exclusive-min", b["gt"]))
    if "le" in b:
        out.append(("above", b["le"] + one))
    if "lt" in b:
        out.append(("at-exclusive-max", b["lt"]))
    if leaf.path[-1:] == (("key",),):
        return out  # dict keys: plain ints on purpose (a JSON round trip makes them strings)
    if is_int:
        out += [("bool", True), ("float", float(_valid(leaf))), ("huge-float", 1e11)]
    else:
        out += [("nan", math.nan), ("inf", math.inf), ("bool", True)]
    return out


def _valid(leaf: Leaf) -> float:
    """A value inside the leaf's bounds: its minimum, or just above an exclusive one."""
    b = leaf.bounds
    if "ge" in b:
        v = b["ge"]
    elif "gt" in b:
        v = b["gt"] + (1 if leaf.kind is int else min(0.5, (b.get("lt", b.get("le", 1.0)) - b["gt"]) / 2))
    else:
        v = 1
    return int(v) if leaf.kind is int else float(v)


def _place(leaf: Leaf, value: Any, default: Any) -> Any:
    """The field's value with ``value`` at the leaf and valid values elsewhere."""
    if not leaf.path:
        return value
    step, rest = leaf.path[0], Leaf(leaf.owner, leaf.path[1:], leaf.kind, leaf.bounds, leaf.strict)
    if step[0] == "item":  # the other elements share the leaf's type and bounds (a tuple of two cut-offs)
        _, i, n = step
        items: list[Any] = [_valid(leaf)] * n
        items[i] = _place(rest, value, None)
        return items
    if step[0] == "value":
        key = next(iter(default)) if isinstance(default, dict) and default else "web"
        return {key: _place(rest, value, default.get(key) if isinstance(default, dict) else None)}
    if step[0] == "key":
        return {value: next(iter(default.values())) if isinstance(default, dict) and default else 0.5}
    if step[0] == "field":
        model = leaf.owner.split(".")[0]
        return {**NESTED_BASE.get(model, {}), step[1]: _place(rest, value, None)}
    raise AssertionError(step)


def _stage_cases() -> list[Any]:
    cases = []
    for stage, info in STAGES.items():
        cls = info.config_cls()
        for name, leaf in _field_leaves(cls):
            if leaf.owner in VALIDATOR_BOUNDED:
                continue
            default = cls.model_fields[name].get_default(call_default_factory=True)
            where = "".join(f".{p[1]}" if p[0] == "field" else f"[{p[0]}]" for p in leaf.path)
            for what, bad in _bad_values(leaf):
                value = _place(leaf, bad, default)
                cases.append(pytest.param(stage, name, value, id=f"{stage}.{name}{where}-{what}"))
    return cases


def _write(tmp_path: Path, stages: list[Any], **top: Any) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**top, "stages": stages}, sort_keys=False))
    return str(path)


def _stage_list(stage: str, params: dict[str, Any]) -> tuple[list[Any], int]:
    """A valid recipe around ``stage`` and the stage's index in it."""
    if stage == "ingest":
        return [{"ingest": params}], 0
    before = ["ingest", "normalize"] if STAGES[stage].rank == 1 and stage != "normalize" else ["ingest"]
    return [*before, {stage: params}], len(before)


@pytest.mark.parametrize(("stage", "key", "value"), _stage_cases())
def test_out_of_bounds_value_is_refused_naming_the_key(tmp_path: Path, stage: str, key: str, value: Any) -> None:
    stages, index = _stage_list(stage, {key: value})
    with pytest.raises(RecipeError) as err:
        load_recipe(_write(tmp_path, stages))
    assert f"stages[{index}].{stage}.{key}" in str(err.value)


def test_cases_cover_every_stage() -> None:
    """Each stage with a numeric parameter contributes cases (a broken leaf walk would yield none)."""
    covered = {c.values[0] for c in _stage_cases()}
    with_numbers = {s for s, info in STAGES.items() if _field_leaves(info.config_cls())}
    assert covered == with_numbers and len(with_numbers) >= 12


# --- the reported cases, and the cross-field rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("params", "key", "message"),
    [
        ({"tokenizer": {"vocab_size": 0}}, "tokenizer.vocab_size", "greater than or equal to 1"),
        ({"tokenizer": {"vocab_size": 1.0e11}}, "tokenizer.vocab_size", "valid integer"),
        ({"tokenizer": {"vocab_size": "1e11"}}, "tokenizer.vocab_size", "valid integer"),  # YAML reads 1e11 as a string
        ({"tokenizer": {"vocab_size": 5_000_000}}, "tokenizer.vocab_size", "less than or equal to 1000000"),
        ({"tokenizer": {"vocab_size": 300}}, "tokenizer.vocab_size", "at least 384"),  # 4 special + 256 bytes + 124
        ({"tokenizer": {"vocab_size": 384, "user_defined_symbols": ["<a>"]}}, "tokenizer.vocab_size", "at least 385"),
        ({"tokenizer": {"vocab_size": 200, "byte_fallback": False}}, None, None),  # no byte pieces to reserve
        (
            {"tokenizer": {"user_defined_symbols": ["<a>"], "control_symbols": ["<a>"]}},
            "tokenizer.user_defined_symbols",
            "twice",
        ),
        ({"tokenizer": {"control_symbols": ["<unk>"]}}, "tokenizer.control_symbols", "<unk>"),
        ({"tokenizer": {"character_coverage": 0.5}}, "tokenizer.character_coverage", "0.98"),
        ({"tokenizer": {"source_weights": {"web": 0}}}, "tokenizer.source_weights", "at least one"),
        ({"langid": {"min_score": -0.1}}, "langid.min_score", "greater than or equal to 0"),
        ({"filter": {"min_words": -1}}, "filter.min_words", "greater than or equal to 0"),
        ({"filter": {"max_symbol_word_ratio": -0.5}}, "filter.max_symbol_word_ratio", "greater than or equal to 0"),
        ({"filter": {"min_words": 500, "max_words": 100}}, "filter.min_words", "above max_words"),
        ({"filter": {"min_words": 500, "max_words": 100, "disabled_rules": ["gopher_max_words"]}}, None, None),
        ({"filter": {"min_mean_word_length": 8, "max_mean_word_length": 4}}, "filter.min_mean_word_length", "above"),
        (
            {"filter": {"book_min_words": 900, "book_max_words": 800, "families": ["book", "gopher_quality"]}},
            "filter.book_min_words",
            "above book_max_words",
        ),
        ({"filter": {"c4_max_word_length": 100_000}}, "filter.c4_max_word_length", "less than or equal to 5000"),
        ({"filter": {"max_top_ngram_frac": {7: 0.1}}}, "filter.max_top_ngram_frac.7 (key)", "less than or equal to 4"),
        ({"dedup": {"bands": 20}}, "dedup.rows", "both"),
        ({"dedup": {"bands": 20, "rows": 20}}, "dedup.bands", "exceeds num_perm"),
        ({"dedup": {"fp_weight": 0.3}}, "dedup.fn_weight", "must be 1"),
        ({"dedup": {"fp_weight": 0.3, "fn_weight": 0.7}}, None, None),
        ({"perplexity": {"cutoffs": {"web": [900, 100]}}}, "perplexity.cutoffs", "above"),
        ({"train": {"steps": 10, "warmup_steps": 11}}, "train.warmup_steps", "exceeds steps"),
        ({"train": {"steps": 10, "checkpoint_every": 20}}, "train.checkpoint_every", "no checkpoint"),
        ({"train": {"steps": 1_000_000, "batch_size": 65_536}}, "train.steps", "sequences"),
        ({"train": {"steps": 3}}, None, None),  # the default warmup is a tenth of steps, not a fixed 30
        ({"train": {"mixture": {"weights": {"web": 1.0}, "max_epochs": -1}}}, "train.mixture.max_epochs", "greater"),
        ({"shards": {"val_fraction": 1.0}}, "shards.val_fraction", "less than 1"),
        ({"report": {"top_reasons": 0}}, "report.top_reasons", "greater than or equal to 1"),
    ],
)
def test_reported_cases_and_cross_field_rules(
    tmp_path: Path, params: dict, key: str | None, message: str | None
) -> None:
    ((stage, stage_params),) = params.items()
    stages, index = _stage_list(stage, stage_params)
    path = _write(tmp_path, stages)
    if key is None:
        load_recipe(path)
        return
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    text = str(err.value)
    assert f"stages[{index}].{key}: " in text and message in text, text


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    stages = ["ingest", {"langid": {"min_score": 2}}, {"filter": {"min_words": -1}}, {"tokenizer": {"vocab_size": 0}}]
    with pytest.raises(RecipeError) as err:
        load_recipe(_write(tmp_path, stages))
    text = str(err.value)
    assert all(
        k in text
        for k in ("stages[1].langid.min_score", "stages[2].filter.min_words", "stages[3].tokenizer.vocab_size")
    )


def test_seed_is_bounded_in_the_recipe_and_on_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"seed: .*greater than or equal to 0"):
        load_recipe(_write(tmp_path, ["ingest"], seed=-1))
    with pytest.raises(RecipeError, match=r"seed: .*less than"):
        load_recipe(_write(tmp_path, ["ingest"]), seed=2**40)


# --- ablation plans go through the same rules -----------------------------------------------------------


QUALITY_AXIS = {"quality": [{"name": "none", "stages": []}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"curation": ["normalize", {"langid": {"min_score": 1.5}}]}, "curation[1].langid.min_score: "),
        (
            {"axes": {"quality": [{"name": "f", "stages": [{"filter": {"min_words": -5}}]}]}},
            "axes.quality.0.stages[0].filter.min_words: ",
        ),
        ({"tokenizer": {"vocab_size": 5_000_000}}, "tokenizer: vocab_size: "),
        (
            {"axes": {"quality": [{"name": "t", "tokenizer": {"vocab_size": 100}}]}},
            "tokenizer: vocab_size: must be at least",
        ),
        ({"train": {"batch_size": True}}, "train.batch_size: "),
        ({"train": {"lr": float("nan")}}, "train.lr: "),
        ({"train": {"threads": 0}}, "train.threads: "),
        ({"eval": {"min_docs_per_source": 50, "max_docs_per_source": 10}}, "eval.min_docs_per_source: "),
        ({"seeds": [0, 1, -1]}, "seeds.2: "),
        ({"axes": {"scale": {"fractions": [float("inf")]}}}, "axes.scale.fractions.0: "),
        ({"axes": {"diversity": {"mixtures": [{"name": "m", "weights": {"web": -1}}]}}}, "weights.web: "),
    ],
)
def test_plans_are_validated_by_the_same_rules(data: dict, message: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_plan({"axes": QUALITY_AXIS, **data})
    assert message in str(err.value), str(err.value)


def test_builtin_recipes_and_plans_still_load() -> None:
    for name in builtin_recipes():
        load_recipe(name)
    for name in builtin_plans():
        load_plan(name)


# --- the command line ---------------------------------------------------------------------------------


def test_cli_refuses_an_invalid_recipe_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("some text\n")
    stages = ["ingest", "normalize", "filter", {"tokenizer": {"vocab_size": 0}}, "shards"]
    out = tmp_path / "run"
    proc = run_cli(
        ["run", "--recipe", _write(tmp_path, stages), "--input", str(tmp_path / "data"), "--out", str(out)], env=None
    )
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and "stages[3].tokenizer.vocab_size:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
