"""Train the project's own fastText language-ID model on ``../shared/data/multilingual``.

Training uses the lingua test-data lines whose ``line % 5 != 0`` (sentences, word pairs and
single words of 75 languages) plus the UDHR paragraphs of those languages; lingua lines with
``line % 5 == 0`` are held out for ``benchmarks/langid.py``. Char n-grams 1-5, 64 dimensions,
40 epochs, one thread and a fixed seed; quantised to about 4 MB.
Run: ``.venv/bin/python -m pipeline.langid_train OUT.ftz``.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
import tempfile
from pathlib import Path

LINGUA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multilingual" / "lingua_testdata_shared.jsonl.gz"
UDHR = LINGUA.with_name("udhr2_paragraphs.jsonl.gz")
HOLDOUT_MOD = 5
# UDHR file codes (ISO 639-3, before any "_script" suffix) of the 75 lingua languages -> ISO 639-1.
UDHR_TO_LINGUA = {
    "afr": "af", "arb": "ar", "azj": "az", "bel": "be", "bul": "bg", "ben": "bn", "bos": "bs", "cat": "ca",
    "ces": "cs", "cym": "cy", "dan": "da", "deu": "de", "ell": "el", "eng": "en", "epo": "eo", "spa": "es",
    "est": "et", "eus": "eu", "pes": "fa", "fin": "fi", "fra": "fr", "gle": "ga", "guj": "gu", "heb": "he",
    "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy", "ind": "id", "isl": "is", "ita": "it", "jpn": "ja",
    "kat": "ka", "kaz": "kk", "kor": "ko", "lat": "la", "lug": "lg", "lit": "lt", "lav": "lv", "mri": "mi",
    "mkd": "mk", "khk": "mn", "mar": "mr", "xsm": None, "nob": "nb", "nld": "nl", "nno": "nn", "pan": "pa",
    "pol": "pl", "por": "pt", "ron": "ro", "rus": "ru", "slk": "sk", "slv": "sl", "sna": "sn", "som": "so",
    "als": "sq", "srp": "sr", "sot": "st", "swe": "sv", "swh": "sw", "tam": "ta", "tel": "te", "tha": "th",
    "tgl": "tl", "tsn": "tn", "tur": "tr", "tso": "ts", "ukr": "uk", "urd": "ur", "vie": "vi", "xho": "xh",
    "yor": "yo", "cmn": "zh", "zul": "zu", "mly": "ms",
}  # fmt: skip


def clean(text: str) -> str:
    """What the model sees: one line, lower-cased, digits dropped (they carry no language)."""
    return re.sub(r"\s+", " ", re.sub(r"\d+", " ", text.lower())).strip()


def load(split: str) -> list[tuple[str, str, str]]:
    """(lang, kind, text) of the ``train`` or ``test`` split."""
    out = []
    for line in gzip.open(LINGUA, "rt", encoding="utf-8"):
        r = json.loads(line)
        held = r["line"] % HOLDOUT_MOD == 0
        if held == (split == "test"):
            out.append((r["lang"], r["kind"], r["text"]))
    return out


def load_udhr() -> list[tuple[str, str, str]]:
    """UDHR paragraphs of the lingua languages (a second domain: legal prose), all for training."""
    if not UDHR.is_file():
        return []
    out = []
    for line in gzip.open(UDHR, "rt", encoding="utf-8"):
        r = json.loads(line)
        lang = UDHR_TO_LINGUA.get(r["lang"].split("_")[0])
        if lang and len(r["text"]) >= 20:
            out.append((lang, "udhr", r["text"]))
    return out


def train(out_path: str, epoch: int = 40, dim: int = 64, word_ngrams: int = 1, maxn: int = 5, seed: int = 0) -> None:
    """Train, quantise and save; every setting is fixed so a retrain gives the same model."""
    import fasttext

    rows = load("train") + load_udhr()
    random.Random(seed).shuffle(rows)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        for lang, _, text in rows:
            fh.write(f"__label__{lang} {clean(text)}\n")
        train_file = fh.name
    model = fasttext.train_supervised(
        input=train_file, epoch=epoch, dim=dim, minn=1, maxn=maxn, wordNgrams=word_ngrams, lr=0.5, loss="softmax",
        bucket=200_000, thread=1, seed=seed, verbose=0,
    )  # fmt: skip
    model.quantize(input=train_file, qnorm=True, retrain=False, cutoff=100_000)
    model.save_model(out_path)
    Path(train_file).unlink()


if __name__ == "__main__":
    # The shipped pipeline/models/lid_lingua75.ftz was trained with these defaults (about 2 min).
    train(sys.argv[1] if len(sys.argv) > 1 else "pipeline/models/lid_lingua75.ftz")
