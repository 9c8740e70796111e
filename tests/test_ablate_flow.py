"""A small ablation end to end on sample_data: arms share cached stage outputs, the evaluation set is
held out of every arm, budgets match, reruns reuse everything and reproduce the numbers."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from flows.ablate import run_ablation
from flows.ablation_plan import parse_plan
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLE = REPO / "sample_data"
INPUTS = [[None, str(SAMPLE / d)] for d in ("web", "books", "misc")]
# Two arms sharing their first stage; tiny model and budget (10 steps of 4 x 32 tokens).
TINY: dict[str, Any] = {
    "name": "tiny",
    "seeds": [0, 1, 2],
    "tokens": 1280,
    "baseline": "heuristic",
    "tokenizer": {"vocab_size": 512},
    "train": {"batch_size": 4, "seq_len": 32, "evals": 2, "eval_batches": 1, "threads": 1},
    "eval": {"max_docs_per_source": 4},
    "generation": {"prompts": ["The"], "max_new_tokens": 4},
    "axes": {
        "quality": [
            {"name": "heuristic", "stages": ["filter"]},
            {"name": "heuristic-dedup", "stages": ["filter", {"dedup": {"threshold": 0.8}}]},
        ]
    },
}


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[dict[str, Any], Path, Path]:
    root = tmp_path_factory.mktemp("ablate")
    cache = root / "cache"
    summary = run_ablation(parse_plan(TINY), INPUTS, root / "run1", cache_dir=cache, say=lambda m: None)
    return summary, root, cache


def _arm(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in summary["arms"] if a["name"] == name)


def test_second_arm_reuses_shared_stage(first) -> None:
    summary, _, _ = first
    a, b = _arm(summary, "heuristic"), _arm(summary, "heuristic-dedup")
    fa, fb = a["stages_summary"][0], b["stages_summary"][0]
    assert fa["name"] == fb["name"] == "filter"
    assert fa["cached_shards"] == 0  # computed by the first arm...
    assert fb["cached_shards"] == fb["shards"] >= 1  # ...and taken from the cache by the second
    assert b["stages_summary"][1]["name"] == "dedup" and b["stages_summary"][1]["cached_shards"] == 0
    assert not any(m["cached"] for arm in summary["arms"] for m in arm["models"])


def test_eval_set_is_held_out_of_every_arm(first) -> None:
    summary, _, cache = first
    eval_docs = pl.read_parquet(cache / "ablation-eval" / summary["eval_set"]["key"] / "eval_docs.parquet")
    assert set(eval_docs["source"]) == set(summary["eval_set"]["by_source"]) and eval_docs.height > 0
    for arm in summary["arms"]:
        train_ids = pl.concat(
            [pl.read_parquet(f, columns=["id"]) for f in Path(arm["data_dir"]).glob("train-*.parquet")]
        )["id"]
        assert not set(train_ids) & set(eval_docs["id"]), arm["name"]
        # every arm is scored on the same val file
        val = pl.read_parquet(Path(arm["data_dir"]) / "val-000.parquet", columns=["id"])
        assert sorted(val["id"]) == sorted(eval_docs["id"])
        assert any(d["stage"] == "holdout" and d["reason"] == "eval_document" for d in arm["drops"])


def test_results_table_budgets_and_statistics(first) -> None:
    summary, root, _ = first
    results = pl.read_parquet(root / "run1" / "results.parquet")
    val = results.filter(pl.col("split") == "val")
    sources = set(summary["eval_set"]["by_source"]) | {"all"}
    assert set(val["source"]) == sources
    # one row per arm x seed x source x step; 10 steps with an evaluation every 5
    assert val.height == 2 * 3 * len(sources) * 2
    assert sorted(val["step"].unique()) == [5, 10] and set(val["tokens"]) == {5 * 128, 10 * 128}
    assert {a["budget_tokens"] for a in summary["arms"]} == {1280}  # budgets match
    final = [r for r in summary["analysis"]["final"] if r["metric"] == "bpb"]
    assert {(r["arm"], r["source"]) for r in final} == {
        (a, s) for a in ("heuristic", "heuristic-dedup") for s in sources
    }
    assert all(r["n"] == 3 and r["ci_low"] <= r["mean"] <= r["ci_high"] for r in final)
    comps = summary["analysis"]["comparisons"]
    assert {r["arm"] for r in comps} == {"heuristic-dedup"}
    assert all(r["verdict"] in ("better", "worse", "within seed noise") for r in comps)
    # the seeds really differ (so the spread is seed noise, not copies)
    assert len({m["final_val_bpb"] for m in _arm(summary, "heuristic")["models"]}) == 3
    dedup = _arm(summary, "heuristic-dedup")["diversity"]
    assert dedup["dedup_removed_rate"] is not None and dedup["exact_duplicate_rate"] == 0.0
    report = root / "run1" / "report"
    assert (report / "index.html").is_file() and (report / "report.md").is_file()
    assert json.loads((root / "run1" / "summary.json").read_text())["baseline"] == "heuristic"


def test_rerun_reuses_every_unit_and_reproduces(first, tmp_path: Path) -> None:
    summary, root, cache = first
    again = run_ablation(parse_plan(TINY), INPUTS, tmp_path / "run2", cache_dir=cache, say=lambda m: None)
    for arm in again["arms"]:
        assert all(s["cached_shards"] == s["shards"] for s in arm["stages_summary"])
        assert all(m["cached"] for m in arm["models"])
    assert pl.read_parquet(tmp_path / "run2" / "results.parquet").equals(
        pl.read_parquet(root / "run1" / "results.parquet")
    )


@pytest.mark.slow
def test_cli_ablate_end_to_end(prefect_server, tmp_path: Path) -> None:
    plan = tmp_path / "tiny.yaml"
    plan.write_text(
        yaml.safe_dump(
            {**TINY, "axes": {"quality": [{"name": "none"}, TINY["axes"]["quality"][0]]}, "baseline": "none"}
        )
    )
    out = tmp_path / "out"
    args = [
        "ablate",
        "--plan",
        str(plan),
        "--out",
        str(out),
        "--input",
        str(SAMPLE / "books"),
        "--input",
        str(SAMPLE / "web"),
        "--eval-input",
        f"reference={SAMPLE / 'misc' / 'encyclopedia.parquet'}",
    ]
    proc = run_cli(args, env=prefect_server, check=True, timeout=300)
    assert "Final validation bits per byte" in proc.stdout and "reference" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert "reference" in summary["eval_set"]["by_source"] and summary["eval_inputs"]
    assert (out / "report" / "index.html").is_file()
    results = pl.read_parquet(out / "results.parquet")
    assert "reference" in set(results["source"])
    # evaluation-only text is never trained on
    for arm in summary["arms"]:
        assert "reference" not in arm["data"]["tokens_by_source"]
    # the report's tables were published as Prefect artifacts of the flow run
    req = urllib.request.Request(
        f"{prefect_server['PREFECT_API_URL']}/artifacts/filter",
        data=json.dumps({"artifacts": {"key": {"any_": ["ablation-tiny-report", "ablation-tiny-bpb"]}}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        arts = {a["key"]: a for a in json.loads(resp.read())}
    assert (
        arts["ablation-tiny-report"]["type"] == "markdown"
        and "Against the baseline" in arts["ablation-tiny-report"]["data"]
    )
    assert arts["ablation-tiny-bpb"]["type"] == "table"
