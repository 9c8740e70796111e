"""The one execution core: both flows run stages through it, units are keyed by the code each stage runs,
a grown corpus recomputes only its new shards, and a big file is cut into parts read in parallel."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import flows.cache as cache_mod
from flows.ablate import _train_params, run_ablation
from flows.ablation_plan import TrainSettings, parse_plan
from flows.curate import curate
from flows.executor import Executor, StageRun
from flows.recipe import parse_recipe
from flows.stages import STAGES
from model.config import TrainConfig
from pipeline.ingest import IngestConfig, InputFile, discover, read_file
from pipeline.ingest.grouping import group_files, split_file
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLE_INPUTS = [[None, str(REPO / "sample_data" / d)] for d in ("web", "books", "misc")]
DOC_STAGES = ["normalize", "filter", "dedup"]


def _spec(name: str, **params: Any) -> dict[str, Any]:
    return {"name": name, "params": STAGES[name].config_cls()(**params).model_dump(mode="json")}


def _words(rng: random.Random, n: int) -> str:
    vocab = "the of and river stone light garden winter market letter window forest song paper".split()
    return " ".join(rng.choice(vocab) for _ in range(n))


def _corpus(folder: Path, names: list[str], seed: int = 0) -> None:
    """One JSONL file per name, a few documents of distinct prose each."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        rng = random.Random(f"{seed}-{name}")
        lines = [json.dumps({"text": f"{name} {k}. " + _words(rng, 120) + "."}) for k in range(6)]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def _run(cache: Path, inputs: list[list[Any]], specs: list[dict[str, Any]], **ingest: Any) -> dict[str, StageRun]:
    executor = Executor(cache)
    state, ingest_run, _ = executor.ingest(inputs, IngestConfig(**ingest).model_dump(mode="json"))
    return {"ingest": ingest_run, **{s["name"]: executor.stage(s, state) for s in specs}}


def _cached(runs: dict[str, StageRun]) -> dict[str, tuple[int, int]]:
    """Per stage: (units taken from the cache, units)."""
    return {name: (sum(bool(r.get("cached")) for r in run.refs), len(run.refs)) for name, run in runs.items()}


# --- one executor for both flows ----------------------------------------------------------------


def test_curation_flow_and_ablation_base_give_byte_identical_documents(tmp_path: Path) -> None:
    stages = [_spec("normalize"), _spec("filter"), _spec("dedup")]
    recipe = parse_recipe({"name": "same", "stages": ["ingest", *[{s["name"]: s["params"]} for s in stages]]})
    manifest = curate.fn(recipe.as_dict(), SAMPLE_INPUTS, str(tmp_path / "curated"), str(tmp_path / "cache-a"))
    assert manifest["status"] == "complete" and manifest["outputs"]["documents"] > 0

    plan = parse_plan(
        {
            "name": "same",
            "seeds": [0, 1, 2],
            "tokens": 640,
            "curation": [{s["name"]: s["params"]} for s in stages],
            "tokenizer": {"vocab_size": 512},
            "train": {"batch_size": 4, "seq_len": 32, "evals": 1, "eval_batches": 1, "threads": 1},
            "eval": {"max_docs_per_source": 2},
            "generation": {"prompts": ["The"], "max_new_tokens": 2},
            "axes": {"quality": [{"name": "none", "stages": []}, {"name": "normalized", "stages": ["normalize"]}]},
        }
    )
    summary = run_ablation(
        plan, SAMPLE_INPUTS, tmp_path / "ablation", cache_dir=tmp_path / "cache-b", say=lambda m: None
    )
    base = summary["base_curation"]
    assert [s["name"] for s in base] == ["normalize", "filter", "dedup", "holdout"]
    units = sorted(base[2]["units"], key=lambda u: u["index"])
    published = sorted((tmp_path / "curated" / "documents").glob("part-*.parquet"))
    assert len(units) == len(published) >= 1
    for unit, part in zip(units, published, strict=True):
        assert (Path(unit["dir"]) / "docs.parquet").read_bytes() == part.read_bytes(), part.name
    # and every stage saw the same documents in and out
    curated = {s["name"]: s for s in manifest["stages"]}
    for s in base[:3]:
        assert (s["docs_in"], s["docs_out"]) == (curated[s["name"]]["docs_in"], curated[s["name"]]["docs_out"])


# --- cache keys follow the code each stage runs -------------------------------------------------


@pytest.fixture
def edited(monkeypatch):
    """Stand in an edited copy of project modules (by path relative to the checkout) for versioning."""
    real = cache_mod._source

    def edit(*paths: str) -> None:
        def source(path: Path) -> bytes:
            rel = path.resolve().relative_to(cache_mod.PACKAGE_ROOT).as_posix()
            return real(path) + (b"\n# edited\n" if rel in paths else b"")

        monkeypatch.setattr(cache_mod, "_source", source)
        cache_mod.clear_code_versions()

    yield edit
    cache_mod.clear_code_versions()


def test_editing_the_report_recomputes_no_document_unit(tmp_path: Path, edited) -> None:
    specs = [_spec(s) for s in DOC_STAGES]
    first = _cached(_run(tmp_path / "cache", SAMPLE_INPUTS, specs))
    assert all(hit == 0 for hit, _ in first.values())
    edited("pipeline/report.py", "pipeline/ablation/report.py", "model/generate.py")
    again = _cached(_run(tmp_path / "cache", SAMPLE_INPUTS, specs))
    assert all(hit == n >= 1 for hit, n in again.values()), again


def test_editing_a_filter_rule_recomputes_the_filter_and_what_follows(tmp_path: Path, edited) -> None:
    specs = [_spec(s) for s in DOC_STAGES]
    _run(tmp_path / "cache", SAMPLE_INPUTS, specs)
    filter_modules = cache_mod.module_closure(("pipeline.filters.stage",))
    assert "pipeline/filters/stage.py" in filter_modules and "pipeline/report.py" not in filter_modules
    rule_files = [m for m in filter_modules if m.startswith("pipeline/filters/")]
    edited(*rule_files)
    again = _cached(_run(tmp_path / "cache", SAMPLE_INPUTS, specs))
    assert again["ingest"][0] == again["ingest"][1] and again["normalize"][0] == again["normalize"][1]
    assert again["filter"][0] == 0 and again["dedup"][0] == 0, again


def test_a_shipped_model_is_part_of_the_stage_code(monkeypatch) -> None:
    """The language-ID stage loads pipeline/models: those files are in its version, not in normalize's."""
    cache_mod.clear_code_versions()
    langid = cache_mod.unit_code(None, "pipeline.langid.stage")
    normalize = cache_mod.unit_code(None, "pipeline.normalize")
    monkeypatch.setattr(cache_mod, "file_fingerprint", lambda path: "changed")
    cache_mod.clear_code_versions()
    assert cache_mod.unit_code(None, "pipeline.langid.stage") != langid
    assert cache_mod.unit_code(None, "pipeline.normalize") == normalize
    cache_mod.clear_code_versions()


# --- incremental runs ---------------------------------------------------------------------------


def test_appending_files_recomputes_only_their_shards(tmp_path: Path) -> None:
    data = tmp_path / "data"
    names = [f"f{k:03d}" for k in range(0, 120, 2)]  # 60 files, room for new names between them
    _corpus(data, names)
    specs = [_spec("normalize"), _spec("dedup"), _spec("filter")]
    small = {"shard_mb": 0.02}  # ~20 KB shards: several files each
    first = _cached(_run(tmp_path / "cache", [[None, str(data)]], specs, **small))
    shards = first["ingest"][1]
    assert shards >= 8
    added = ["f031", "f077", "f118"]
    _corpus(data, added)
    again = _cached(_run(tmp_path / "cache", [[None, str(data)]], specs, **small))
    recomputed = again["ingest"][1] - again["ingest"][0]
    assert 1 <= recomputed <= 2 * len(added), again
    # untouched shards stay cached through the global dedup step and the stage after it
    for stage in ("normalize", "dedup", "filter"):
        hit, n = again[stage]
        assert n - hit == recomputed, (stage, again)


def test_shard_boundaries_depend_on_each_file_alone(tmp_path: Path) -> None:
    _corpus(tmp_path / "d", [f"g{k:04d}" for k in range(400)])
    files, _ = discover([(None, str(tmp_path / "d"))])
    before = group_files(files, 20_000, 2000)
    after = group_files(files[:100] + files[101:], 20_000, 2000)  # one file removed
    as_names = lambda groups: {tuple(f.display for f in g) for g in groups}  # noqa: E731
    changed = as_names(before) ^ as_names(after)
    assert len(before) >= 20 and len(changed) <= 4, len(changed)


# --- one big file, several units ------------------------------------------------------------------


def _frames(parts: list[InputFile]) -> tuple[pl.DataFrame, pl.DataFrame]:
    docs, rejected = zip(*(read_file(p, IngestConfig()) for p in parts), strict=True)
    return pl.concat(docs).sort("id"), pl.concat(rejected).sort("id")


def test_a_big_jsonl_file_is_cut_into_parts_with_the_same_documents(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = []
    for k in range(900):
        if k % 97 == 0:
            lines.append("")  # blank lines
        elif k % 131 == 0:
            lines.append("{not json")
        else:
            lines.append(json.dumps({"text": f"doc {k} " + _words(rng, rng.randint(5, 60))}))
    lines.append(json.dumps({"text": "a long one " + _words(rng, 6000)}))  # crosses part boundaries
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    files, _ = discover([(None, str(path))])
    whole = files[0]
    parts = split_file(whole, 20_000)
    assert len(parts) >= 5 and all(p.part is not None for p in parts)
    assert parts[0].part[0] == 0 and parts[-1].part[1] == whole.size
    raw = path.read_bytes()
    for before, after in zip(parts, parts[1:], strict=False):  # contiguous, each starting at a line start
        assert before.part[1] == after.part[0] and raw[after.part[0] - 1 : after.part[0]] == b"\n"
        assert after.part[2] == raw[: after.part[0]].count(b"\n")
    docs, rejected = _frames(parts)
    ref_docs, ref_rejected = _frames([whole])
    assert docs.equals(ref_docs) and docs.height > 800
    assert rejected.equals(ref_rejected) and rejected.height >= 6  # bad JSON lines, same ids and reasons
    # the groups put each part in its own shard: read in parallel
    assert len(group_files([whole], 20_000, 2000)) == len(parts)


def test_a_big_parquet_file_is_cut_by_row_groups(tmp_path: Path) -> None:
    rng = random.Random(5)
    texts = [f"row {k} " + _words(rng, 40) for k in range(2000)]
    path = tmp_path / "big.parquet"
    pl.DataFrame({"text": texts}).write_parquet(path, row_group_size=200, compression="uncompressed")
    files, _ = discover([(None, str(path))])
    parts = split_file(files[0], 40_000)
    assert len(parts) >= 3
    docs, _ = _frames(parts)
    ref_docs, _ = _frames(files)
    assert docs.equals(ref_docs) and docs.height == 2000


def test_a_part_survives_the_trip_through_a_task(tmp_path: Path) -> None:
    f = InputFile(tmp_path / "x.jsonl", "x.jsonl", "jsonl", None, 10, part=(3, 9, 1))
    assert InputFile.from_dict(json.loads(json.dumps(f.to_dict()))) == f


# --- one source for every training setting --------------------------------------------------------


def test_a_plan_sets_any_train_config_field_with_its_one_default() -> None:
    plan = parse_plan(
        {
            "name": "p",
            "train": {"grad_accum": 2, "compile": False, "tie_embeddings": False, "lr": 1e-3},
            "axes": {"quality": [{"name": "a", "stages": []}, {"name": "b", "stages": ["normalize"]}]},
        }
    )
    cfg = TrainConfig(**_train_params(plan, steps=40, seed=3, weights={"web": 1.0}))
    assert (cfg.grad_accum, cfg.tie_embeddings, cfg.lr, cfg.steps, cfg.seed) == (2, False, 1e-3, 40, 3)
    assert cfg.warmup_steps == 4 and cfg.eval_every == 8  # shares of the arm's steps
    defaults = TrainSettings()
    for name in ("batch_size", "eval_batches", "threads", "grad_clip"):
        assert getattr(defaults, name) == TrainConfig.model_fields[name].default
    for per_run in ("steps", "seed", "mixture"):
        with pytest.raises(ValueError, match=per_run):
            TrainSettings(**{per_run: 1})


# --- edges of cutting files, and what a key must cover ------------------------------------------


def _jsonl(path: Path, n: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    path.write_text("".join(json.dumps({"text": f"line {k} " + _words(rng, 30)}) + "\n" for k in range(n)))
    return path


def test_a_file_over_max_file_mb_is_not_cut_and_gives_one_reject(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "data" / "big.jsonl", 8000)  # about 1.7 MB
    assert path.stat().st_size > 1 << 20
    runs = _run(tmp_path / "cache", [[None, str(path.parent)]], [], shard_mb=0.1, max_file_mb=1)
    (ref,) = runs["ingest"].refs  # not cut into parts: a file over the limit is rejected whole
    rejected = pl.read_parquet(Path(ref["dir"]) / "rejected.parquet")
    assert (ref["docs_out"], rejected.height) == (0, 1) and "too large" in rejected["reason"][0]


def test_a_file_changed_after_it_was_cut_is_rejected_per_part_not_misread(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "big.jsonl", 3000)
    (f,), _ = discover([(None, str(path))])
    parts = split_file(f, 20_000)
    with path.open("a") as fh:
        fh.write(json.dumps({"text": "appended later"}) + "\n")
    results = [read_file(p, IngestConfig()) for p in parts]
    assert all(d.height == 0 and r.height == 1 for d, r in results)
    reasons = {r["reason"][0] for _, r in results}
    assert len(reasons) == 1 and "changed since the run listed it" in reasons.pop()
    assert len({r["id"][0] for _, r in results}) == len(parts)  # one id per part


def test_zero_row_groups_give_no_phantom_part(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "z.parquet"
    with pq.ParquetWriter(path, pa.schema([("text", pa.string())])) as writer:
        for k in range(3):
            writer.write_table(pa.table({"text": [f"row {k}-{i} " + "word " * 200 for i in range(100)]}))
        for _ in range(3):
            writer.write_table(pa.table({"text": pa.array([], pa.string())}))
    (f,), _ = discover([(None, str(path))])
    parts = split_file(f, 10_000)
    assert len(parts) >= 2
    docs, rejected = _frames(parts)
    assert docs.height == 300 and rejected.height == 0


def test_a_cut_parquet_file_counts_its_size_once_in_the_manifest(tmp_path: Path) -> None:
    from flows.curate import _input_fingerprints

    path = tmp_path / "data" / "big.parquet"
    path.parent.mkdir()
    rng = random.Random(1)
    texts = [f"row {k} " + _words(rng, 40) for k in range(2000)]
    pl.DataFrame({"text": texts}).write_parquet(path, row_group_size=200, compression="uncompressed")
    runs = _run(tmp_path / "cache", [[None, str(path.parent)]], [], shard_mb=0.02)
    assert len(runs["ingest"].refs) >= 2
    (entry,) = _input_fingerprints([[None, str(path.parent)]], runs["ingest"].refs)
    assert entry["files"] == 1 and entry["bytes"] == path.stat().st_size


def test_a_file_a_stage_reads_is_keyed_by_its_content(tmp_path: Path) -> None:
    evals = tmp_path / "eval.txt"
    evals.write_text("a completely unrelated sentence about nothing in particular at all today")
    specs = [_spec("decontaminate", eval_paths=[str(evals)], ngram=5)]
    first = _cached(_run(tmp_path / "cache", SAMPLE_INPUTS, specs))["decontaminate"]
    again = _cached(_run(tmp_path / "cache", SAMPLE_INPUTS, specs))["decontaminate"]
    evals.write_text("a different evaluation text now sits in the same file and must be seen")
    changed = _cached(_run(tmp_path / "cache", SAMPLE_INPUTS, specs))["decontaminate"]
    assert first[0] == 0 and again[0] == again[1] and changed[0] == 0


def test_a_shard_size_too_small_to_mean_anything_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="shard_mb"):
        IngestConfig(shard_mb=1e-9)


def test_appending_to_a_big_jsonl_file_recomputes_only_its_last_parts(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "data" / "big.jsonl", 3000)
    first = _cached(_run(tmp_path / "cache", [[None, str(path.parent)]], [_spec("normalize")], shard_mb=0.05))
    assert first["ingest"][1] >= 5
    with path.open("a") as fh:
        fh.write("".join(json.dumps({"text": f"appended {k} and more words"}) + "\n" for k in range(50)))
    again = _cached(_run(tmp_path / "cache", [[None, str(path.parent)]], [_spec("normalize")], shard_mb=0.05))
    for stage in ("ingest", "normalize"):
        hit, n = again[stage]
        assert n - hit <= 2 and hit >= n - 2 >= 3, (stage, again)


def test_a_shards_rows_digest_ignores_row_order_and_sees_every_value() -> None:
    from flows.tasks import _rows_digest

    rows = pl.DataFrame({"id": ["b", "a", "c"], "split": ["train", "val", "train"]})
    assert _rows_digest(rows) == _rows_digest(rows.reverse())
    assert _rows_digest(rows) != _rows_digest(rows.with_columns(pl.lit("train").alias("split")))
