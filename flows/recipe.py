"""Recipes: an ordered list of stages with their parameters, validated by pydantic.

A recipe file looks like::

    name: default
    seed: 0
    stages:
      - ingest: {}
      - langid: {keep: [en]}
      - filter
      - dedup: {threshold: 0.8}

Each stage is a bare name or a one-key mapping from the name to its parameters. Unknown
stages, unknown keys and values out of their bounds are errors that name the offender by its
place in the file (``stages[3].tokenizer.vocab_size: ...``), all of them at once, before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flows.stages import STAGES, StageKind
from pipeline.bounds import Seed

RECIPE_DIR = Path(__file__).parent / "recipes"


class RecipeError(ValueError):
    """A recipe that cannot be run, with a message meant for the user."""


class StageSpec(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    config: BaseModel
    implicit: bool = False  # added because a later stage needs it, not written in the recipe

    @property
    def kind(self) -> StageKind:
        return STAGES[self.name].kind


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = "custom"
    description: str = ""
    seed: Seed | None = Field(None, description="when set, every stage with a `seed` parameter not set uses it")
    stages: list[StageSpec]

    @model_validator(mode="before")
    @classmethod
    def _parse_stages(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("a recipe must be a mapping with a `stages` list")
        raw = data.get("stages")
        if not isinstance(raw, list) or not raw:
            raise ValueError("`stages` must be a non-empty list")
        data = dict(data)
        data["stages"] = parse_stages(raw)
        return data

    def stage(self, name: str) -> StageSpec | None:
        return next((s for s in self.stages if s.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """The recipe as run: every parameter, defaults included (for the manifest)."""
        return {
            "name": self.name,
            "description": self.description,
            "seed": self.seed,
            "stages": [
                {"name": s.name, "implicit": s.implicit, "params": s.config.model_dump(mode="json")}
                for s in self.stages
            ],
        }

    def as_recipe_file(self) -> dict[str, Any]:
        """The recipe in the form a recipe file takes (stages as one-key mappings), every parameter written
        out: ``parse_recipe`` of it gives this recipe back, so ``show-recipe`` output is a valid recipe."""
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.seed is not None:
            data["seed"] = self.seed
        data["stages"] = [{s.name: s.config.model_dump(mode="json")} for s in self.stages]
        return data


def describe_errors(err: ValidationError, prefix: str = "") -> list[str]:
    """One ``prefix.key.path: message (got value)`` line per error of ``err``."""
    out = []
    for e in err.errors():
        # "(key)", not pydantic's "[key]": the CLI prints messages with rich, which takes "[key]" for markup.
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "").replace(".[key]", " (key)")
        msg = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        # The offending value helps when it is a scalar (1e11 read as a float, "1e11" as a string);
        # cross-field messages and custom validators' (``value_error``) already quote theirs.
        quoted = e["type"] in ("extra_forbidden", "missing", "cross_field", "value_error")
        if not quoted and isinstance(value, str | int | float | None):
            shown = repr(value)
            msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'}"
            if e["type"] == "int_type" and isinstance(value, float | str):
                msg += ": write a whole number, with no decimal point or exponent"
            msg += ")"
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def parse_stages(raw: list[Any], where: str = "stages") -> list[StageSpec]:
    """Each recipe-style stage item as a validated StageSpec; every problem is reported at once,
    located as ``where[i].stage.key``."""
    specs, problems = [], []
    for i, item in enumerate(raw):
        try:
            specs.append(_parse_stage(item, f"{where}[{i}]"))
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise ValueError("; ".join(problems))
    return specs


def _parse_stage(item: Any, where: str) -> StageSpec:
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
        params = params or {}
    else:
        raise ValueError(f"{where}: must be a stage name or a one-key mapping, got {item!r}")
    if name not in STAGES:
        raise ValueError(f"{where}: unknown stage {name!r} (known stages: {', '.join(STAGES)})")
    if not isinstance(params, dict):
        raise ValueError(f"{where}.{name}: parameters must be a mapping, got {params!r}")
    try:
        config = STAGES[name].config_cls().model_validate(params)
    except ValidationError as err:
        raise ValueError("; ".join(describe_errors(err, f"{where}.{name}"))) from None
    return StageSpec(name=name, config=config)


def _check_order(recipe: Recipe) -> None:
    names = [s.name for s in recipe.stages]
    if names[0] != "ingest":
        raise RecipeError("the first stage of a recipe must be `ingest`")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RecipeError(f"stage(s) listed twice: {', '.join(dupes)}")
    for a, b in zip(names, names[1:], strict=False):
        if STAGES[b].rank < STAGES[a].rank:
            raise RecipeError(f"stage `{b}` cannot come after `{a}`")


def stage_order(names: list[str]) -> list[str]:
    """``names`` (known stage names) with the stages they need added (`shards` needs a tokenizer, `train`
    needs shards and a tokenizer; a prerequisite's own prerequisites too), sorted by rank, stable: the order
    a recipe's stages run in. Only the registry is read, so no stage code is imported."""
    out = list(names)
    i = 0
    while i < len(out):
        out += [need for need in STAGES[out[i]].needs if need not in out]
        i += 1
    return sorted(out, key=lambda name: STAGES[name].rank)


def recipe_outline(data: Any) -> list[str]:
    """The stage names of a recipe file's ``stages`` list in the order ``load_recipe`` gives them
    (:func:`stage_order`). Parameters are not validated, so no stage code is imported."""
    return stage_order([item if isinstance(item, str) else next(iter(item)) for item in data["stages"]])


def _add_prerequisites(recipe: Recipe) -> None:
    """Add the stages that later ones need (:func:`stage_order`), with defaults, and sort by rank."""
    given = {s.name: s for s in recipe.stages}  # names are distinct: _check_order ran first
    recipe.stages = [
        given.get(name) or StageSpec(name=name, config=STAGES[name].config_cls()(), implicit=True)
        for name in stage_order(list(given))
    ]


def _apply_seed(recipe: Recipe) -> None:
    if recipe.seed is None:
        return
    for spec in recipe.stages:
        if "seed" in type(spec.config).model_fields and "seed" not in spec.config.model_fields_set:
            spec.config = spec.config.model_copy(update={"seed": recipe.seed})


def parse_recipe(data: Any, seed: int | None = None) -> Recipe:
    if seed is not None and isinstance(data, dict):
        data = {**data, "seed": seed}  # validated with the recipe's own seed bounds
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(f"invalid recipe: {'; '.join(describe_errors(err))}") from None
    _check_order(recipe)
    _add_prerequisites(recipe)
    _apply_seed(recipe)
    return recipe


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def read_named_yaml(name_or_path: str, folder: Path, kind: str, error: type[Exception]) -> tuple[Path, Any]:
    """(path, safe-loaded YAML) of a file path, or of ``folder/NAME.yaml`` for a built-in ``kind``;
    ``error`` names what is missing or unparsable."""
    path = Path(name_or_path)
    if not path.is_file():
        builtin = folder / f"{name_or_path}.yaml"
        if not builtin.is_file():
            names = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
            raise error(f"{kind} {name_or_path!r} is neither a file nor a built-in {kind} (built-in: {names})")
        path = builtin
    try:
        return path, yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {_yaml_problem(err)}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: problem`` of a YAML error (1-based, where the parser stopped), on one line."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if not problem:
        return " ".join(str(err).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def load_recipe(name_or_path: str, seed: int | None = None) -> Recipe:
    """Load a built-in recipe by name, or a YAML file by path."""
    path, data = read_named_yaml(name_or_path, RECIPE_DIR, "recipe", RecipeError)
    recipe = parse_recipe(data, seed=seed)
    if recipe.name == "custom" and isinstance(data, dict) and "name" not in data:
        recipe.name = path.stem
    return recipe
