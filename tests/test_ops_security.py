"""Security: nothing we load can run code (no unpickling of model files, checkpoints, results or indexes;
YAML safe-loaded), and inputs cannot make a run write outside its output folder."""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

SOURCE_DIRS = ("pipeline", "flows", "model", "benchmarks")


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: the file appearing means untrusted data ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _sources() -> list[Path]:
    return [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]


def _call_name(node: ast.Call) -> str:
    f = node.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def test_no_code_path_unpickles_or_unsafe_loads():
    """Every call that can execute code while loading data, anywhere in our sources."""
    problems = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            kwargs = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(REPO)}:{node.lineno} {name}"
            if name.split(".")[-1] in ("loads", "load") and name.split(".")[0] in ("pickle", "cloudpickle", "dill"):
                problems.append(where)
            elif name in ("torch.load",):
                wo = kwargs.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    problems.append(f"{where} without weights_only=True")
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
                problems.append(where)
            elif name.endswith("np.load") or name == "numpy.load":
                ap = kwargs.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    problems.append(f"{where} with allow_pickle")
            elif name.split(".")[-1] in ("extractall", "unpack_archive"):
                problems.append(f"{where}: archive extraction")
            elif isinstance(node.func, ast.Name) and name in ("eval", "exec"):
                problems.append(where)
    assert not problems, problems


def _pickle_file(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"weights": _Payload(marker)}))


def test_model_loading_refuses_a_pickle_and_runs_nothing(tmp_path):
    from model.load import load_model

    marker = tmp_path / "pwned"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(
        json.dumps({"model": {"vocab_size": 64, "d_model": 16, "n_layer": 1, "n_head": 2, "n_kv_head": 1}})
    )
    _pickle_file(model_dir / "model.safetensors", marker)
    with pytest.raises(Exception, match="(?i)header|deserializ|safetensor"):  # safetensors' own refusal
        load_model(model_dir)
    assert not marker.exists()


def test_checkpoint_resume_refuses_a_pickle_and_runs_nothing(tmp_path):
    import torch

    from model.config import ModelConfig
    from model.model import Transformer
    from model.train import load_train_state

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"step": 1, "metrics": {}, "param_groups": []}))
    _pickle_file(ckpt / "model.safetensors", marker)
    _pickle_file(ckpt / "optimizer.safetensors", marker)
    cfg = ModelConfig(vocab_size=64, d_model=16, n_layer=1, n_head=2, n_kv_head=1)
    model = Transformer(cfg)
    with pytest.raises(Exception, match="(?i)header|deserializ|safetensor"):
        load_train_state(ckpt, model, torch.optim.AdamW(model.parameters()), sampler=None)  # type: ignore[arg-type]
    assert not marker.exists()


def test_perplexity_model_refuses_pickled_arrays(tmp_path):
    import numpy as np

    from pipeline.quality import perplexity

    marker = tmp_path / "pwned"
    bad = tmp_path / "lm.npz"
    np.savez(bad, uni=np.array([_Payload(marker)], dtype=object), meta=np.array("{}"))
    with pytest.raises(ValueError, match="allow_pickle"):
        perplexity._load.__wrapped__(str(bad))
    assert not marker.exists()


YAML_BOMB = '!!python/object/apply:os.system ["touch {marker}"]\n'


def test_recipe_and_prefect_yaml_are_safe_loaded(tmp_path):
    from flows.commands.serve import ServeError, read_deployments
    from flows.recipe import RecipeError, load_recipe

    marker = tmp_path / "pwned"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text("name: x\nstages:\n  - ingest: " + YAML_BOMB.format(marker=marker))
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(recipe))
    deployments = tmp_path / "prefect.yaml"
    deployments.write_text("deployments: " + YAML_BOMB.format(marker=marker))
    with pytest.raises(ServeError):
        read_deployments(deployments)
    assert not marker.exists()


def test_prefect_results_are_json_not_pickle():
    from prefect.serializers import JSONSerializer

    from flows import tasks
    from flows.curate import curate
    from flows.deployments import curate_job

    for t in (tasks.ingest_shard, tasks.doc_stage, tasks.dedup_clusters, tasks.train_task):
        assert isinstance(t.result_serializer, JSONSerializer) or t.result_serializer == "json"
    for f in (curate, curate_job):
        assert isinstance(f.result_serializer, JSONSerializer) or f.result_serializer == "json"


def test_archive_members_cannot_write_outside_the_output(tmp_path):
    """Archives are never unpacked: a tar or zip with members named ``../escape`` or ``/abs`` given as
    input is a rejected file, and nothing appears outside the run's folders."""
    from pipeline.ingest import IngestConfig, discover, read_file

    inputs = tmp_path / "in"
    inputs.mkdir()
    payload = b"written outside the output folder"
    with tarfile.open(inputs / "evil.tar.gz", "w:gz") as tar:
        for name in ("../escape.txt", "/tmp/abs-escape.txt", "ok/../../escape2.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with zipfile.ZipFile(inputs / "evil.zip", "w") as zf:
        zf.writestr("../zip-escape.txt", payload)
    before = set(tmp_path.rglob("*"))
    files, warnings = discover([(None, str(inputs))])
    assert {f.fmt for f in files} == {"unknown"} and len(warnings) == 2
    for f in files:
        docs, rejected = read_file(f, IngestConfig())
        assert docs.height == 0 and rejected["reason"][0].startswith("unsupported file type")
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/tmp/abs-escape.txt").exists() and not os.path.exists(tmp_path.parent / "escape.txt")
