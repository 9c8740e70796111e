"""Ablation plans: arms over the scale, quality and diversity axes, with shared training settings.

A plan file looks like::

    name: quality
    baseline: none
    seeds: [0, 1, 2]
    tokens: 200000            # training tokens per arm (null: the smallest arm's available tokens)
    train: {preset: nano, batch_size: 8, seq_len: 128}
    axes:
      quality:
        - {name: none, stages: []}
        - {name: heuristic, stages: [filter]}

Arms are the cross product of the axes' levels. Every arm shares the base curation, the held-out
evaluation set, the tokenizer (unless a quality level names its own) and the training settings, so
only the data varies. Unknown keys, axes and stages are errors that name the offender.
"""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.recipe import RecipeError, describe_errors, parse_recipe, parse_stages, read_named_yaml
from flows.stages import STAGES, StageKind
from pipeline.bounds import (
    MAX_DOC_CHARS,
    Float,
    Int,
    Seed,
    field_error,
)

PLAN_DIR = Path(__file__).parent / "plans"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@=<>/-]*$")


class PlanError(ValueError):
    """A plan that cannot be run, with a message meant for the user."""


def _check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} name {name!r} must start with a letter or digit and hold no spaces, '+' or ','")
    return name


def parse_stage_list(items: list[Any], where: str) -> list[dict[str, Any]]:
    """Validate recipe-style stage items (as in a recipe's ``stages``) and return them with every
    parameter filled in; only document and dedup stages may appear in an ablation's curation."""
    if not isinstance(items, list):
        raise ValueError("stages must be a list")
    # A plan as dumped (every parameter filled in) holds {"name": ..., "params": ...}: take it back.
    items = [{i["name"]: i["params"]} if isinstance(i, dict) and set(i) == {"name", "params"} else i for i in items]
    for item in items:
        name = item if isinstance(item, str) else next(iter(item), None) if isinstance(item, dict) else None
        if name in STAGES and STAGES[name].kind not in (StageKind.DOCS, StageKind.DEDUP):
            raise ValueError(
                f"stage {name!r} cannot be part of {where} "
                "(ingest, tokenizer, shards, training and report are set by the plan)"
            )
    parse_stages(items, where="")  # "[i].stage.key: ..." errors, located in this list (parse_plan adds where)
    try:
        recipe = parse_recipe({"name": where, "stages": ["ingest", *items]})  # stage order and duplicates
    except RecipeError as err:
        raise ValueError(str(err).removeprefix("invalid recipe: ").removeprefix("recipe: ")) from None
    return [{"name": s.name, "params": s.config.model_dump(mode="json")} for s in recipe.stages[1:]]


# TrainConfig fields the ablation sets for each arm and seed itself; a plan sets every other one.
PER_RUN_FIELDS = ("steps", "warmup_steps", "eval_every", "seed", "mixture", "checkpoint_every", "resume")


class _AblationTraining(BaseModel):
    """The training settings only an ablation has (shares of each arm's steps, the repeat limit)."""

    model_config = ConfigDict(extra="forbid")

    warmup_fraction: Float = Field(0.1, ge=0.0, lt=1.0, description="warmup steps as a share of the arm's steps")
    evals: Int = Field(5, gt=0, le=10_000, description="validation points on each loss curve")
    max_epochs: Float = Field(64.0, gt=0.0, le=1e6, description="a source repeated more often is an error")

    @field_validator("preset", check_fields=False)
    @classmethod
    def _known_preset(cls, v: str) -> str:
        from model.config import check_preset

        return check_preset(v)


def _train_settings() -> type[BaseModel]:
    """Training shared by every arm: every ``model.config.TrainConfig`` field (same type, bounds and
    default: declared once, there) except those set per run, plus ``_AblationTraining``'s."""
    from pydantic import create_model

    from model.config import TrainConfig

    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in TrainConfig.model_fields.items() if name not in PER_RUN_FIELDS
    }
    return create_model("TrainSettings", __base__=_AblationTraining, __module__=__name__, **fields)


TrainSettings = _train_settings()


class EvalSettings(BaseModel):
    """The one held-out, decontaminated evaluation set every arm is measured on."""

    model_config = ConfigDict(extra="forbid")

    fraction: Float = Field(0.1, gt=0.0, lt=1.0, description="share of each source's document groups held out")
    max_docs_per_source: Int = Field(40, gt=0, le=1_000_000, description="held-out document groups per source, at most")
    min_docs_per_source: Int = Field(
        1, ge=1, le=1_000_000, description="held out even from a source of few groups (2+)"
    )
    # Evaluation documents are cut to this many characters (None: whole), so the tokens a model scores
    # (eval_batches x batch x seq_len per source, from the start of the stream) span many documents
    # instead of the first chapters of one book. Whole documents are still removed from training.
    max_doc_chars: Int | None = Field(3000, gt=0, le=MAX_DOC_CHARS)
    ngram: Int = Field(13, ge=3, le=1000, description="word n-gram length of the overlap check against training data")
    # A training document whose word n-grams are at least this share evaluation n-grams is removed
    # from every arm: a near copy of evaluation text. A share, not one hit, so a licence header or a
    # Gutenberg boilerplate line shared with one evaluation document does not remove a whole source.
    max_overlap: Float = Field(0.2, gt=0.0, le=1.0)
    seed: Seed = 0

    @model_validator(mode="after")
    def _min_le_max(self) -> EvalSettings:
        if self.min_docs_per_source > self.max_docs_per_source:
            msg = f"{self.min_docs_per_source} is above max_docs_per_source={self.max_docs_per_source}"
            raise field_error("min_docs_per_source", msg, self.min_docs_per_source)
        return self


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompts: list[str] = Field(default_factory=lambda: ["The", "Once upon a time", "In the year 1850,", "def main("])
    max_new_tokens: Int = Field(32, gt=0, le=1_000_000)
    temperature: Float = Field(0.8, ge=0.0, le=100.0, description="0: greedy")
    top_p: Float = Field(0.9, gt=0.0, le=1.0)
    seed: Seed = 0


class QualityLevel(BaseModel):
    """A curation recipe for the arm: document stages run after the base curation."""

    model_config = ConfigDict(extra="forbid")

    name: str
    stages: list[Any] = Field(default_factory=list)
    tokenizer: dict[str, Any] | None = Field(None, description="this level's own tokenizer, trained on its data")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "quality level")

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: list[Any]) -> list[dict[str, Any]]:
        return parse_stage_list(v, "quality level")

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else _tokenizer_params(v)


class ScaleAxis(BaseModel):
    """Token budgets: fractions of the plan's ``tokens``, or absolute counts."""

    model_config = ConfigDict(extra="forbid")

    # "<= 1" is checked below, for its message that says what the fraction is of.
    fractions: list[Annotated[Float, Field(gt=0.0)]] | None = None
    tokens: list[Annotated[Int, Field(gt=0, le=2**53)]] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ScaleAxis:
        values = self.fractions if self.tokens is None else self.tokens
        if (self.fractions is None) == (self.tokens is None):
            raise ValueError("the scale axis sets exactly one of `fractions` or `tokens`")
        if not values:
            raise ValueError("the scale axis needs at least one value")
        if len(set(values)) != len(values):
            raise ValueError("scale values must be distinct")
        if self.fractions is not None and any(f > 1 for f in self.fractions):
            raise ValueError("scale fractions must be <= 1 (a fraction of the plan's tokens)")
        return self

    def levels(self) -> list[tuple[str, dict[str, Any]]]:
        if self.tokens is not None:
            return [(f"{t:,}tok".replace(",", "_"), {"tokens": t}) for t in self.tokens]
        return [(str(Fraction(f).limit_denominator(1000)), {"fraction": f}) for f in self.fractions or []]


class MixtureLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    weights: dict[str, Annotated[Float, Field(ge=0.0)]]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "mixture")

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if not any(w > 0 for w in v.values()):
            raise ValueError("mixture weights must be >= 0 with at least one > 0")
        return v


class DiversityAxis(BaseModel):
    """Source mixtures: the natural one, explicit weights, and leave-one-source-out."""

    model_config = ConfigDict(extra="forbid")

    natural: bool = True  # an arm with each source at its share of the available tokens
    mixtures: list[MixtureLevel] = Field(default_factory=list)
    # One arm per source without it (the others keep natural shares). Sources are known only after
    # curation, so these arms are named "no-<source>" and added when the data is seen; or list the
    # sources here to name the arms up front.
    leave_one_out: bool | list[str] = False

    @model_validator(mode="after")
    def _some(self) -> DiversityAxis:
        if not self.natural and not self.mixtures and not self.leave_one_out:
            raise ValueError("the diversity axis needs `natural`, `mixtures` or `leave_one_out`")
        return self

    def levels(self, sources: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if self.natural:
            out.append(("natural", {"weights": None, "exclude": None}))
        out += [(m.name, {"weights": m.weights, "exclude": None}) for m in self.mixtures]
        loo = self.leave_one_out if isinstance(self.leave_one_out, list) else (sources or [])
        if self.leave_one_out:
            out += [(f"no-{s}", {"weights": None, "exclude": s}) for s in loo]
        return out


class Axes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quality: list[QualityLevel] | None = None
    diversity: DiversityAxis | None = None
    scale: ScaleAxis | None = None

    @field_validator("quality")
    @classmethod
    def _unique(cls, v: list[QualityLevel] | None) -> list[QualityLevel] | None:
        names = [q.name for q in v or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"quality level(s) named twice: {', '.join(dupes)}")
        if v is not None and not v:
            raise ValueError("the quality axis needs at least one level")
        return v


class Arm(BaseModel):
    """One cell of the plan: its levels and what they set."""

    name: str
    levels: dict[str, str]  # axis -> level name
    stages: list[dict[str, Any]] = Field(default_factory=list)
    tokenizer: dict[str, Any] | None = None
    weights: dict[str, float] | None = None
    exclude: str | None = None
    fraction: float | None = None
    tokens: int | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._=-]+", "_", self.name)


class AblationPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    description: str = ""
    baseline: str | None = Field(None, description="arm the others are compared with (default: the first)")
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2])
    tokens: Int | None = Field(
        None, gt=0, le=2**53, description="training tokens per arm at scale 1; null: smallest arm's"
    )
    test: Literal["welch", "paired"] = "welch"
    alpha: Float = Field(0.05, gt=0.0, lt=1.0)
    # Base curation shared by every arm, run before the evaluation set is held out.
    curation: list[Any] = Field(
        default_factory=lambda: ["normalize", {"langid": {"keep": ["en"]}}], validate_default=True
    )
    tokenizer: dict[str, Any] = Field(default_factory=lambda: {"vocab_size": 2048}, validate_default=True)
    train: TrainSettings = Field(default_factory=TrainSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    axes: Axes

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        return list(range(v)) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("seeds")
    @classmethod
    def _enough_seeds(cls, v: list[int]) -> list[int]:
        if len(v) < 3:
            raise ValueError("an ablation needs at least 3 seeds to separate data effects from seed noise")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("curation")
    @classmethod
    def _curation(cls, v: list[Any]) -> list[dict[str, Any]]:
        return parse_stage_list(v, "curation")

    @field_validator("tokenizer")
    @classmethod
    def _tok(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _tokenizer_params(v)

    @model_validator(mode="after")
    def _check(self) -> AblationPlan:
        if not any(getattr(self.axes, a) is not None for a in Axes.model_fields):
            raise ValueError(f"axes: name at least one axis ({', '.join(Axes.model_fields)})")
        names = [a.name for a in self.arms(sources=None)]
        check_unique_arms(names)
        if self.baseline is not None:
            loo = self.axes.diversity is not None and self.axes.diversity.leave_one_out is True
            if self.baseline not in names and not (loo and "no-" in self.baseline):
                raise ValueError(f"baseline: no arm named {self.baseline!r} (arms: {', '.join(names)})")
        return self

    def arms(self, sources: list[str] | None) -> list[Arm]:
        """The cross product of the axes' levels (quality x diversity x scale), in plan order.

        ``sources`` (known after curation) expands ``leave_one_out: true``.
        """
        axes: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
        if self.axes.quality is not None:
            axes.append(
                ("quality", [(q.name, {"stages": q.stages, "tokenizer": q.tokenizer}) for q in self.axes.quality])
            )
        if self.axes.diversity is not None:
            axes.append(("diversity", self.axes.diversity.levels(sources)))
        if self.axes.scale is not None:
            axes.append(("scale", self.axes.scale.levels()))
        arms = []
        for combo in itertools.product(*(levels for _, levels in axes)):
            fields: dict[str, Any] = {}
            for _, settings in combo:
                fields.update(settings)
            name = "+".join(level for level, _ in combo)
            arms.append(Arm(name=name, levels={a: lv for (a, _), (lv, _) in zip(axes, combo, strict=True)}, **fields))
        return arms

    def baseline_arm(self, arms: list[Arm]) -> Arm:
        check_unique_arms([a.name for a in arms])
        if self.baseline is None:
            return arms[0]
        found = next((a for a in arms if a.name == self.baseline), None)
        if found is None:
            raise PlanError(f"baseline: no arm named {self.baseline!r} (arms: {', '.join(a.name for a in arms)})")
        return found


def check_unique_arms(names: list[str]) -> None:
    """Arm names key every result and folder: two levels that render alike must not collide."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PlanError(f"arm names collide: {', '.join(dupes)} (rename a level, or use distinct values)")


def _tokenizer_params(v: dict[str, Any]) -> dict[str, Any]:
    try:
        return STAGES["tokenizer"].config_cls()(**v).model_dump(mode="json")
    except ValidationError as err:
        raise ValueError("; ".join(describe_errors(err))) from None


def parse_plan(data: Any) -> AblationPlan:
    if not isinstance(data, dict):
        raise PlanError("invalid plan: a plan must be a mapping with an `axes` section")
    try:
        return AblationPlan.model_validate(data)
    except ValidationError as err:
        msgs = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                where = loc.rsplit(".", 1)
                key = where[-1]
                msg = f"unknown {'axis' if loc.startswith('axes.') and loc.count('.') == 1 else 'key'} {key!r}"
                if loc.startswith("axes.") and loc.count(".") == 1:
                    msg += f" (known axes: {', '.join(Axes.model_fields)})"
            # A stage list's own errors start with the item's index: "curation[0].filter.min_words: ...".
            msgs.append(f"{loc}{msg}" if msg.startswith("[") else f"{loc}: {msg}" if loc else msg)
        raise PlanError("invalid plan: " + "; ".join(msgs)) from None


def builtin_plans() -> list[str]:
    return sorted(p.stem for p in PLAN_DIR.glob("*.yaml"))


def load_plan(name_or_path: str, overrides: dict[str, Any] | None = None) -> AblationPlan:
    """Load a built-in plan by name or a YAML file by path; ``overrides`` replace top-level keys
    (``train`` is merged key by key)."""
    path, data = read_named_yaml(name_or_path, PLAN_DIR, "plan", PlanError)
    if isinstance(data, dict):
        data = {"name": path.stem, **data}
        for key, value in (overrides or {}).items():
            if key == "train" and isinstance(data.get("train"), dict):
                data["train"] = {**data["train"], **value}
            else:
                data[key] = value
    return parse_plan(data)
