"""fastText quality classifier (stage ``"quality"``) and its trainer.

The classifier follows GPT-3 (Brown et al. 2020, appendix A): a linear classifier separates reference
text (positives: here WikiText articles and books) from raw web text (negatives), and documents are
kept either above a score threshold or by the GPT-3 Pareto rule ``np.random.pareto(alpha) > 1 - score``
with ``alpha = 9``. We use fastText's supervised mode (as CCNet / DCLM do) on lowercased text with
word bigrams, quantized to a small ``.ftz`` that ships in ``pipeline/models/`` with a JSON sidecar
holding the fingerprint (sha256) of the exact training file and the training parameters.

``quality_score`` (probability of the positive label) is a column on kept rows; on rejected rows it is
in ``detail`` as ``{"quality_score": ...}`` (the rejected table has a fixed schema).
"""

from __future__ import annotations

import gzip
import hashlib
import html as html_lib
import io
import json
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from pipeline import MODELS_DIR
from pipeline.bounds import MAX_DOC_CHARS, Float, Int, Seed, ZeroToOne
from pipeline.schema import StageResult, to_rejected

STAGE = "quality"
DEFAULT_MODEL = MODELS_DIR / "quality.ftz"
POS, NEG = "__label__hq", "__label__lq"


class QualityConfig(BaseModel):
    """Keep documents the quality classifier likes."""

    model_config = ConfigDict(extra="forbid")

    model: str = "builtin"  # "builtin" = pipeline/models/quality.ftz, or a path to a fastText model
    # "threshold": keep score >= threshold. "pareto": GPT-3's rule, keep if pareto(alpha) > 1 - score.
    mode: Literal["threshold", "pareto"] = "threshold"
    threshold: ZeroToOne = 0.5
    pareto_alpha: Float = Field(9.0, gt=0.0, le=1000.0, description="GPT-3, appendix A: alpha = 9")
    seed: Seed = 0  # the Pareto draw is a hash of (seed, document id): the same in every run and sharding
    # Sources judged; others get a score but are always kept (GPT-3 filtered Common Crawl only).
    apply_to: list[str] = Field(default_factory=lambda: ["web"])
    max_chars: Int = Field(
        20_000, ge=1, le=MAX_DOC_CHARS, description="characters shown to the classifier (the head of long documents)"
    )

    def files_read(self) -> list[Path]:
        """A user's model file (part of the stage's cache key; the shipped one is part of its code)."""
        return [] if self.model == "builtin" else [Path(self.model)]


def model_file(name: str) -> Path:
    path = DEFAULT_MODEL if name == "builtin" else Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"quality model not found: {path} (train one with `refinery train-quality`)")
    return path


@lru_cache(maxsize=4)
def _load(path: str):
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-time warning
    return fasttext.load_model(path)


def prepare(text: pl.Expr, max_chars: int = 20_000) -> pl.Expr:
    """What the classifier sees: lowercased, one line, punctuation split off words."""
    return (
        text.fill_null("")
        .str.slice(0, max_chars)
        .str.to_lowercase()
        .str.replace_all(r"([\p{P}\p{S}])", " $1 ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def score(df: pl.DataFrame, model: str = "builtin", max_chars: int = 20_000) -> np.ndarray:
    """Probability of the positive (reference-like) label for each row of ``df``."""
    if df.height == 0:
        return np.zeros(0)
    ft = _load(str(model_file(model)))
    lines = df.select(prepare(pl.col("text"), max_chars)).to_series().to_list()
    labels, probs = ft.predict(lines, k=2)
    out = np.empty(len(lines))
    for i, (lab, p) in enumerate(zip(labels, probs, strict=True)):
        d = dict(zip(lab, p, strict=True))
        out[i] = d.get(POS, 1.0 - d.get(NEG, 1.0))
    return np.clip(out, 0.0, 1.0)


def pareto_keep(ids: pl.Series, scores: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """GPT-3's rule with a per-document draw: u = hash(seed, id) in (0, 1), x = (1 - u)^(-1/alpha) - 1
    (numpy's ``pareto``, a Lomax draw, by inverse CDF); keep when x > 1 - score."""
    h = np.array([xxhash.xxh64_intdigest((i or "").encode("utf-8"), seed=seed) for i in ids.to_list()], dtype=np.uint64)
    u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    x = (1.0 - u) ** (-1.0 / alpha) - 1.0
    return x > 1.0 - scores


def classify(df: pl.DataFrame, cfg: QualityConfig | None = None) -> StageResult:
    """Score every row; reject judged rows that the threshold or the Pareto draw turns down."""
    cfg = cfg or QualityConfig()
    scores = score(df, cfg.model, cfg.max_chars)
    s = df.with_columns(pl.Series("quality_score", scores, dtype=pl.Float64))
    judged = s["source"].is_in(cfg.apply_to).to_numpy()
    if cfg.mode == "threshold":
        keep = scores >= cfg.threshold
        reason = f"quality_score<{cfg.threshold}"
    else:
        keep = pareto_keep(s["id"], scores, cfg.pareto_alpha, cfg.seed)
        reason = f"quality_pareto(alpha={cfg.pareto_alpha})"
    keep = keep | ~judged
    mask = pl.Series(keep)
    kept = s.filter(mask)
    bad = s.filter(~mask).with_columns(
        pl.concat_str(
            [pl.lit('{"quality_score": '), pl.col("quality_score").round(6).cast(pl.String), pl.lit("}")]
        ).alias("detail")
    )
    rejected = to_rejected(bad, STAGE, reason)
    hist = np.histogram(scores, bins=10, range=(0.0, 1.0))[0].tolist() if len(scores) else [0] * 10
    stats = {"dropped_by_rule": {reason: int(bad.height)} if bad.height else {}, "score_histogram": hist}
    return StageResult(kept=kept, rejected=rejected, stats=stats)


# ----------------------------------------------------------------------------------------------
# training data and training

_TAGS = re.compile(r"(?is)<(script|style|noscript)\b.*?</\1>|<!--.*?-->|<[^>]+>")


def strip_html(raw: str) -> str:
    """Raw web text the naive way (boilerplate and navigation kept): that is the negative class."""
    text = html_lib.unescape(_TAGS.sub("\n", raw))
    lines = (ln.strip() for ln in text.splitlines())
    return "\n".join(ln for ln in lines if ln)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    if path.suffix == ".zst":
        import zstandard

        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(path.open("rb")), encoding="utf-8")
    return path.open(encoding="utf-8", errors="replace")


def _chunks(text: str, size: int) -> list[str]:
    """Paragraph-aligned pieces of about ``size`` characters (books are far longer than web pages)."""
    out, cur, n = [], [], 0
    for para in re.split(r"\n\s*\n", text):
        cur.append(para)
        n += len(para)
        if n >= size:
            out.append("\n\n".join(cur))
            cur, n = [], 0
    if n > size // 4:
        out.append("\n\n".join(cur))
    return out


# Fields holding a page's text, in order; pages with only ``html`` are tag-stripped naively.
_TEXT_FIELDS = ("text", "content", "expected_text", "without_snippets")


def read_texts(paths: list[Path], chunk_chars: int = 3000) -> list[str]:
    """Texts from JSONL (``text``/``content``, or ``html`` tag-stripped), Parquet, or plain text files
    (cut into ~chunk_chars pieces). Folders are walked in sorted order."""
    files: list[Path] = []
    for p in paths:
        files += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    texts: list[str] = []
    for f in files:
        name = f.name.lower()
        if ".jsonl" in name:
            with _open_text(f) as fh:
                for line in fh:
                    try:
                        d = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    t = next((d[k] for k in _TEXT_FIELDS if isinstance(d.get(k), str) and d[k].strip()), "")
                    t = t or (strip_html(d["html"]) if d.get("html") else "")
                    texts += _chunks(t, chunk_chars) if len(t) > 2 * chunk_chars else [t]
        elif name.endswith(".parquet"):
            for t in pl.read_parquet(f, columns=["text"])["text"].drop_nulls().to_list():
                texts += _chunks(t, chunk_chars) if len(t) > 2 * chunk_chars else [t]
        elif name.endswith((".txt", ".txt.gz")):
            with _open_text(f) as fh:
                texts += _chunks(fh.read().replace("\r\n", "\n"), chunk_chars)
    return [t for t in texts if len(t.strip()) >= 200]


class TrainQualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # fastText's supervised training parameters.
    epoch: Int = Field(10, ge=1, le=10_000)
    lr: Float = Field(0.5, gt=0.0, le=10.0)
    word_ngrams: Int = Field(2, ge=1, le=10)
    dim: Int = Field(32, ge=1, le=4096)
    min_count: Int = Field(2, ge=1, le=1_000_000)
    quantize: bool = True  # .ftz with a pruned vocabulary: small enough to ship in the repository
    cutoff: Int = Field(20_000, ge=0, le=100_000_000, description="words (and n-gram buckets) kept by quantization")
    seed: Seed = 0
    max_per_class: Int = Field(3000, ge=1, le=100_000_000, description="larger classes are subsampled to this")


def train_quality(
    positives: list[Path], negatives: list[Path], out: Path, cfg: TrainQualityConfig | None = None
) -> dict:
    """Train the classifier; writes ``out`` (.ftz or .bin) and ``out.json`` with the data fingerprint."""
    import fasttext

    cfg = cfg or TrainQualityConfig()
    pos, neg = read_texts(positives), read_texts(negatives)
    if not pos or not neg:
        raise ValueError(f"need texts in both classes (got {len(pos)} positive, {len(neg)} negative)")
    rng = np.random.default_rng(cfg.seed)
    n = min(len(pos), len(neg), cfg.max_per_class)
    pos = [pos[i] for i in sorted(rng.choice(len(pos), n, replace=False))]
    neg = [neg[i] for i in sorted(rng.choice(len(neg), n, replace=False))]
    rows = pl.DataFrame({"text": pos + neg, "label": [POS] * n + [NEG] * n})
    rows = rows.with_columns(prepare(pl.col("text")).alias("text")).sample(fraction=1.0, shuffle=True, seed=cfg.seed)
    lines = [f"{lab} {t}\n" for lab, t in zip(rows["label"], rows["text"], strict=True)]
    data = "".join(lines).encode("utf-8")
    fingerprint = hashlib.sha256(data).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_bytes(data)
        model = fasttext.train_supervised(
            input=str(train_file),
            epoch=cfg.epoch,
            lr=cfg.lr,
            wordNgrams=cfg.word_ngrams,
            dim=cfg.dim,
            minCount=cfg.min_count,
            seed=cfg.seed,
            thread=1,
            verbose=0,
        )
        if cfg.quantize:
            model.quantize(input=str(train_file), qnorm=True, retrain=True, cutoff=cfg.cutoff, thread=1, verbose=0)
        model.save_model(str(out))
    meta = {
        "training_data_sha256": fingerprint,
        "positives": [str(p) for p in positives],
        "negatives": [str(p) for p in negatives],
        "examples_per_class": n,
        "params": cfg.model_dump(),
        "labels": {"positive": POS, "negative": NEG},
        "bytes": out.stat().st_size,
    }
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _load.cache_clear()
    return meta
