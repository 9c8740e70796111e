"""The stage registry: each recipe stage name, its config class and where it runs in a flow."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel


class StageKind(StrEnum):
    INGEST = "ingest"  # files -> document shards
    DOCS = "docs"  # document shard -> kept/rejected shard, mapped over shards
    DEDUP = "dedup"  # global: signatures per shard, clusters over all, filter per shard
    TOKENIZER = "tokenizer"  # global: train on the curated documents
    SHARDS = "shards"  # documents -> token shards, mapped over shards
    TRAIN = "train"  # token shards -> model
    REPORT = "report"  # run folder -> Markdown/HTML report


@dataclass(frozen=True)
class StageInfo:
    kind: StageKind
    config_path: str  # "module:Class", imported lazily so a recipe check stays cheap
    rank: int  # stages of lower rank must come first; document stages share one rank
    needs: tuple[str, ...] = ()
    func_path: str | None = None  # for DOCS stages: "module:function" taking (batch, config) -> StageResult

    def config_cls(self) -> type[BaseModel]:
        module, cls = self.config_path.split(":")
        return getattr(importlib.import_module(module), cls)

    def func(self):
        module, name = (self.func_path or "").split(":")
        return getattr(importlib.import_module(module), name)


STAGES: dict[str, StageInfo] = {
    "ingest": StageInfo(StageKind.INGEST, "pipeline.ingest:IngestConfig", 0),
    "normalize": StageInfo(
        StageKind.DOCS, "pipeline.normalize:NormalizeConfig", 1, func_path="pipeline.normalize:normalize"
    ),
    "langid": StageInfo(
        StageKind.DOCS, "pipeline.langid.stage:LangIdConfig", 1, func_path="pipeline.langid.stage:identify"
    ),
    "filter": StageInfo(
        StageKind.DOCS, "pipeline.filters.stage:FilterConfig", 1, func_path="pipeline.filters.stage:apply_filters"
    ),
    "dedup": StageInfo(StageKind.DEDUP, "pipeline.dedup.config:DedupConfig", 1),
    "pii": StageInfo(StageKind.DOCS, "pipeline.pii.config:PiiConfig", 1, func_path="pipeline.pii.stage:remove_pii"),
    "line_dedup": StageInfo(
        StageKind.DOCS,
        "pipeline.dedup.lines:LineDedupConfig",
        1,
        func_path="pipeline.dedup.lines:remove_repeated_lines",
    ),
    "substring_dedup": StageInfo(
        StageKind.DOCS,
        "pipeline.dedup.substrings:SubstringDedupConfig",
        1,
        func_path="pipeline.dedup.substrings:remove_repeated_substrings",
    ),
    "decontaminate": StageInfo(
        StageKind.DOCS,
        "pipeline.decontaminate:DecontaminateConfig",
        1,
        func_path="pipeline.decontaminate:decontaminate",
    ),
    "quality": StageInfo(
        StageKind.DOCS, "pipeline.quality.classifier:QualityConfig", 1, func_path="pipeline.quality.classifier:classify"
    ),
    "perplexity": StageInfo(
        StageKind.DOCS,
        "pipeline.quality.perplexity:PerplexityConfig",
        1,
        func_path="pipeline.quality.perplexity:filter_perplexity",
    ),
    "tokenizer": StageInfo(StageKind.TOKENIZER, "pipeline.tokenizer.training:TokenizerConfig", 2),
    "shards": StageInfo(StageKind.SHARDS, "pipeline.shards:ShardsConfig", 3, needs=("tokenizer",)),
    "train": StageInfo(StageKind.TRAIN, "model.config:TrainConfig", 4, needs=("tokenizer", "shards")),
    "report": StageInfo(StageKind.REPORT, "pipeline.report:ReportConfig", 5),
}
