"""The ablation report renders: the HTML parses, every plot is embedded as a PNG data URI, and the
sections an analyst needs are there."""

from __future__ import annotations

import base64
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl

from flows.ablation_plan import load_plan
from pipeline.ablation.analysis import analyse
from pipeline.ablation.report import write_ablation_report

ARMS = ["1/4", "1/2", "1"]
SEEDS = [0, 1, 2]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.headings: list[str] = []
        self.tables = 0
        self._in_heading = False
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        if tag == "table":
            self.tables += 1
        self._in_heading = tag in ("h1", "h2", "h3")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings.append(data)


def _results() -> pl.DataFrame:
    rows = []
    for k, arm in enumerate(ARMS):
        budget = 1000 * 2 ** (k + 2)
        for seed in SEEDS:
            for step in (1, 2):
                for source in ("book", "web", "all"):
                    loss = 5 * (budget * step / 2) ** -0.2 + 1.0 + 0.01 * seed + (0.1 if source == "web" else 0)
                    rows.append(
                        {
                            "arm": arm,
                            "level_scale": arm,
                            "seed": seed,
                            "split": "val",
                            "source": source,
                            "step": step,
                            "tokens": budget * step // 2,
                            "loss": loss,
                            "bpb": loss / math.log(2) / 4,
                        }
                    )
            rows.append(
                {
                    "arm": arm,
                    "level_scale": arm,
                    "seed": seed,
                    "split": "train",
                    "source": "all",
                    "step": 2,
                    "tokens": budget,
                    "loss": 3.0,
                    "bpb": None,
                }
            )
    return pl.DataFrame(rows)


def _summary(results: pl.DataFrame) -> dict[str, Any]:
    plan = load_plan("scale")
    arms = []
    for arm in plan.arms(None)[1:]:
        arms.append(
            {
                "name": arm.name,
                "levels": arm.levels,
                "stages": [],
                "budget_tokens": 1000,
                "steps": 10,
                "weights": {"book": 0.4, "web": 0.6},
                "too_small_sources": ["other"],
                "data": {"tokens_by_source": {"book": 400, "web": 600}, "docs_by_source": {"book": 2, "web": 9}},
                "data_key": "d" * 32,
                "tokenizer_fingerprint": "t" * 32,
                "stages_summary": [],
                "drops": [{"stage": "filter", "reason": "gopher_word_count<50", "source": "web", "docs": 3}],
                "pii": {"counts": {"EMAIL": 2}},
                "diversity": {
                    "source_entropy_bits": 0.97,
                    "unigram_entropy_bits": 7.5,
                    "bigram_entropy_bits": 11.0,
                    "entropy_sample_tokens": 1000,
                    "dedup_removed_rate": 0.05,
                    "exact_duplicate_rate": 0.0,
                },
                "models": [
                    {
                        "seed": s,
                        "key": "m" * 32,
                        "final_val_bpb": 1.5,
                        "mixture": {"book": {"tokens": 400, "epochs": 0.5, "flagged": False}},
                    }
                    for s in SEEDS
                ],
                "generations": [{"prompt": p, "text": f" continued <{p}> & more"} for p in plan.generation.prompts],
            }
        )
    return {
        "plan": plan.model_dump(mode="json"),
        "baseline": "1",
        "tokens_per_step": 1024,
        "base_tokens": 16000,
        "shared_tokenizer": {"vocab_size": 2048},
        "eval_set": {
            "key": "e" * 32,
            "by_source": {"book": {"docs": 2, "bytes": 900}, "web": {"docs": 3, "bytes": 800}},
            "tokens_by_source": {"book": 300, "web": 250},
            "scored_tokens_per_source_max": 8192,
        },
        "code_version": "0.1.0+test",
        "input_key": "i" * 32,
        "arms": arms,
        "analysis": analyse(results, baseline="1", scale_axis="scale"),
        "seconds": 12.0,
    }


def test_report_renders_with_embedded_plots(tmp_path: Path) -> None:
    results = _results()
    summary = _summary(results)
    report = write_ablation_report(tmp_path, summary, results)
    page = _Page()
    page.feed((report / "index.html").read_text())
    page.close()
    assert not page.stack, f"unclosed tags: {page.stack}"
    assert len(page.images) == 3  # bpb bars, loss curves, scaling fit
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in (
        "Plan",
        "Evaluation set",
        "Final validation bits per byte and loss per source",
        "Against the baseline (1)",
        "Loss curves",
        "Scaling fit",
        "Diversity of each arm's training data",
        "Data cards",
        "Sample generations",
        "Lineage",
    ):
        assert heading in page.headings, heading
    assert "Arm 1/4" in page.headings and page.tables >= 10
    md = (report / "report.md").read_text()
    assert "![validation loss curves with seed bands](loss_curves.png)" in md
    assert (report / "loss_curves.png").is_file() and (report / "scaling.png").is_file()
    # the generated text is escaped in HTML, verbatim in Markdown
    assert "continued &lt;The&gt; &amp; more" in (report / "index.html").read_text()
    assert "continued <The> & more" in md
    # the scaling fit recovers the synthetic exponent and says the curve falls monotonically
    fit = next(f for f in summary["analysis"]["scaling"] if f["source"] == "book" and f["metric"] == "loss")
    assert abs(fit["b"] - 0.2) < 0.02 and fit["monotone"]
    assert all(f"| {arm} | " in md for arm in ARMS)
