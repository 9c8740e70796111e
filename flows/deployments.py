"""Flows meant for Prefect deployments (``prefect.yaml``, ``refinery serve``), with parameters that
pydantic validates when a run starts, so a bad schedule parameter fails that run with a clear message.

``curate_job`` wraps the ``curate`` flow: it resolves the recipe and the input locations the way
``refinery run`` does (inputs parsed by ``flows.cli_options.parse_inputs``, the CLI's own parser) and
picks the task runner (threads, a local Dask cluster or a running one).
A nightly deployment points it at an input location and a fixed output folder: each night only new
or changed input files do new work, everything else is a cache hit.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.cli_options import parse_inputs


class CurateJob(BaseModel):
    """Parameters of a scheduled curation run (the UI renders them as a form)."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field("default", description="built-in recipe name or a recipe YAML file")
    inputs: list[str] = Field(
        min_length=1, description="files, folders or globs; NAME=PATH forces the source (web, book, code, other)"
    )
    out: str = Field(description="run folder; reuse it between scheduled runs so finished work is cached")
    cache_dir: str | None = Field(None, description="work cache (default OUT/cache); share it between deployments")
    seed: int | None = Field(None, description="seed for every stage that takes one")
    workers: int | None = Field(None, ge=1, description="map shards over a local Dask cluster of N processes")
    dask_address: str | None = Field(None, description="map shards over a running Dask cluster, tcp://host:8786")
    threads: int | None = Field(None, ge=1, description="thread-pool size when no Dask cluster is used")

    @field_validator("recipe")
    @classmethod
    def _recipe_exists(cls, v: str) -> str:
        from flows.recipe import RecipeError, load_recipe

        try:
            load_recipe(v)
        except RecipeError as err:
            raise ValueError(str(err)) from None
        return v

    @field_validator("inputs")
    @classmethod
    def _inputs_parse(cls, v: list[str]) -> list[str]:
        parse_inputs(v, prefixed_inputs=True)  # InputError (a ValueError) naming an unknown source
        return v

    @field_validator("dask_address")
    @classmethod
    def _dask_scheme(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"a Dask scheduler address looks like tcp://host:8786, got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_runner(self) -> CurateJob:
        if self.workers and self.dask_address:
            raise ValueError("give either workers or dask_address, not both")
        return self

    def input_pairs(self) -> list[list[Any]]:
        """``inputs`` as [source or None, path] pairs, as ``curate`` takes them."""
        return parse_inputs(self.inputs, prefixed_inputs=True)


@flow(name="refinery-curate-job", persist_result=True, result_serializer="json")
def curate_job(job: CurateJob) -> dict[str, Any]:
    """Curate ``job.inputs`` with ``job.recipe`` into ``job.out``; returns a summary of the manifest."""
    from flows.curate import curate
    from flows.recipe import load_recipe
    from flows.runners import task_runner
    from pipeline.ingest import discover

    recipe = load_recipe(job.recipe, seed=job.seed)
    pairs = job.input_pairs()
    discover([(s, p) for s, p in pairs])  # a missing input location fails here, before any work
    runner = task_runner(job.workers, job.dask_address, job.threads)
    manifest = curate.with_options(task_runner=runner)(recipe.as_dict(), pairs, job.out, job.cache_dir)
    return {
        "out": job.out,
        "status": manifest.get("status"),
        "documents": manifest["outputs"]["documents"],
        "rejected": manifest["outputs"]["rejected"],
        "stages": [
            {k: s[k] for k in ("name", "docs_in", "docs_out", "docs_rejected", "seconds", "cached_shards", "shards")}
            for s in manifest["stages"]
        ],
    }
