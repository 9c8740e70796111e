"""From an ablation's results table to its statistics: per arm and source, the spread over seeds of
the final validation bits per byte and loss; each arm against the baseline with a significance
test; and, on a scale axis, power-law fits of loss against training tokens.

``results`` has one row per arm x seed x source x step (``split`` "val" or "train"; see
``flows.ablate``), with ``level_<axis>`` columns naming each arm's level on every axis.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

from pipeline.ablation.stats import describe, paired_test, power_law_fit, welch_test

METRICS = ("bpb", "loss")


def final_rows(results: pl.DataFrame) -> pl.DataFrame:
    """The last validation point of every (arm, seed): the number each run is judged by."""
    val = results.filter(pl.col("split") == "val")
    last = val.group_by("arm", "seed").agg(pl.col("step").max().alias("_last"))
    return val.join(last, on=["arm", "seed"]).filter(pl.col("step") == pl.col("_last")).drop("_last")


def _arm_order(results: pl.DataFrame) -> list[str]:
    return results["arm"].unique(maintain_order=True).to_list()


def _sources(results: pl.DataFrame) -> list[str]:
    found = sorted(s for s in results.filter(pl.col("split") == "val")["source"].unique().to_list() if s != "all")
    return [*found, "all"]


def seed_summary(final: pl.DataFrame, arms: list[str], sources: list[str]) -> list[dict[str, Any]]:
    rows = []
    for arm in arms:
        for source in sources:
            mine = final.filter((pl.col("arm") == arm) & (pl.col("source") == source)).sort("seed")
            for metric in METRICS:
                values = [v for v in mine[metric].to_list() if v is not None]
                if values:
                    rows.append(
                        {
                            "arm": arm,
                            "source": source,
                            "metric": metric,
                            **describe(values),
                            "seeds": mine["seed"].to_list(),
                        }
                    )
    return rows


def compare(
    final: pl.DataFrame,
    arms: list[str],
    sources: list[str],
    baseline: str,
    test: Literal["welch", "paired"] = "welch",
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Each arm minus the baseline, per source and metric (lower is better), with the test's p-value.

    ``verdict`` is "better" / "worse" when p < alpha, else "within seed noise".
    """
    rows = []
    for arm in arms:
        if arm == baseline:
            continue
        for source in sources:
            for metric in METRICS:
                a = final.filter((pl.col("arm") == arm) & (pl.col("source") == source)).select("seed", metric)
                b = final.filter((pl.col("arm") == baseline) & (pl.col("source") == source)).select("seed", metric)
                a, b = a.drop_nulls(), b.drop_nulls()
                if a.height < 2 or b.height < 2:
                    continue
                if test == "paired":
                    both = a.join(b, on="seed", suffix="_base").sort("seed")
                    if both.height < 2:
                        continue
                    r = paired_test(both[metric].to_list(), both[f"{metric}_base"].to_list())
                else:
                    r = welch_test(a[metric].to_list(), b[metric].to_list())
                verdict = "within seed noise" if not r["p"] < alpha else ("better" if r["diff"] < 0 else "worse")
                rows.append(
                    {
                        "arm": arm,
                        "baseline": baseline,
                        "source": source,
                        "metric": metric,
                        "test": test,
                        **r,
                        "verdict": verdict,
                    }
                )
    return rows


def scaling(final: pl.DataFrame, scale_level: str = "level_scale") -> list[dict[str, Any]]:
    """A power-law fit of final loss (and bpb) against training tokens, per group of arms that differ
    only in their scale level, per source; seeds enter as separate points."""
    if scale_level not in final.columns:
        return []
    others = sorted(c for c in final.columns if c.startswith("level_") and c != scale_level)
    groups = final.select(others).unique(maintain_order=True).rows() if others else [()]
    rows = []
    for group in groups:
        mine = final
        for col, value in zip(others, group, strict=True):
            mine = mine.filter(pl.col(col) == value)
        label = "+".join(str(v) for v in group) or "all arms"
        for source in [*sorted(s for s in mine["source"].unique().to_list() if s != "all"), "all"]:
            pts = mine.filter(pl.col("source") == source)
            for metric in METRICS:
                p = pts.select("tokens", metric).drop_nulls()
                if p["tokens"].n_unique() < 2:
                    continue
                fit = power_law_fit(p["tokens"].to_list(), p[metric].to_list())
                rows.append({"group": label, "source": source, "metric": metric, **fit})
    return rows


def analyse(
    results: pl.DataFrame,
    baseline: str,
    test: Literal["welch", "paired"] = "welch",
    alpha: float = 0.05,
    scale_axis: str | None = None,
) -> dict[str, Any]:
    final = final_rows(results)
    arms, sources = _arm_order(results), _sources(results)
    return {
        "arms": arms,
        "sources": sources,
        "final": seed_summary(final, arms, sources),
        "comparisons": compare(final, arms, sources, baseline, test, alpha),
        "scaling": scaling(final, f"level_{scale_axis}") if scale_axis else [],
        "test": test,
        "alpha": alpha,
    }
