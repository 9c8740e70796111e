"""Train the project's own language-ID models on ``../shared/data/multilingual``.

Training uses the lingua test-data lines whose ``line % 5 != 0`` (sentences, word pairs and
single words of 75 languages) plus the UDHR paragraphs of those languages; lingua lines with
``line % 5 == 0`` are held out for ``benchmarks/langid.py``.

* ``linear75`` (``train_linear``): a linear SVM (scikit-learn's LinearSVC, C=0.5) over hashed
  char 1-4-grams and words, see ``pipeline.langid.linear``; about 3.5 MB.
* ``lingua75`` (``train``): fastText, char n-grams 1-5, 64 dimensions, 40 epochs, one thread
  and a fixed seed; quantised to about 4 MB.

Run: ``.venv/bin/python -m pipeline.training.langid [linear|fasttext] [OUT]``.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
import tempfile
from pathlib import Path

LINGUA = Path(__file__).resolve().parents[3] / "shared" / "data" / "multilingual" / "lingua_testdata_shared.jsonl.gz"
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


def _fit_temperature(scores, gold) -> float:
    """The softmax temperature that minimises the negative log-likelihood of the gold labels."""
    import numpy as np

    best_t, best_nll = 1.0, float("inf")
    for t in np.geomspace(0.5, 50, 61):
        z = t * scores
        z = z - z.max(axis=1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(gold)), gold]))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def fit_linear(rows: list[tuple[str, str, str]], c: float = 0.5, keep: float = 0.1, seed: int = 0):
    """Fit ``linear75``-style weights on (lang, kind, text) rows; returns a ``LinearLangId``.

    The softmax temperature is fitted on a tenth of the rows held out from a first fit; the
    returned weights come from a second fit on all rows, pruned to the ``keep`` fraction of
    largest magnitudes (they are stored as int8).
    """
    import numpy as np
    import scipy.sparse as sp
    from sklearn.svm import LinearSVC

    from pipeline.langid.linear import LinearLangId, idf_of, raw_counts, tfidf

    rows = list(rows)
    random.Random(seed).shuffle(rows)
    labels = sorted({lang for lang, _, _ in rows})
    y = np.array([labels.index(lang) for lang, _, _ in rows])
    char, word = raw_counts([clean(text) for _, _, text in rows])
    char_idf, word_idf = idf_of(char), idf_of(word)
    x = sp.hstack([tfidf(char, char_idf), tfidf(word, word_idf)], format="csr")

    calib = np.arange(len(rows)) % 10 == 0
    first = LinearSVC(C=c, random_state=seed).fit(x[~calib], y[~calib])
    temperature = _fit_temperature(_as_matrix(first.decision_function(x[calib])), y[calib])

    svm = LinearSVC(C=c, random_state=seed).fit(x, y)
    w, bias = svm.coef_.T.astype(np.float32), svm.intercept_.astype(np.float32)
    if len(labels) == 2:  # sklearn keeps one score, the second class's: split it as (-s/2, s/2)
        w, bias = np.hstack([-w / 2, w / 2]), np.concatenate([-bias / 2, bias / 2])
    w[np.abs(w) < np.quantile(np.abs(w), 1 - keep)] = 0.0
    return LinearLangId(labels, sp.csr_matrix(w), bias, char_idf, word_idf, temperature)


def _as_matrix(a):
    """A two-class score vector s becomes columns (-s/2, s/2); anything else is returned as is."""
    import numpy as np

    a = np.asarray(a)
    return np.stack([-a / 2, a / 2], axis=1) if a.ndim == 1 else a


def train_linear(out_path: str, c: float = 0.5, keep: float = 0.1, seed: int = 0) -> None:
    """Train ``linear75`` on the same data as the fastText model and save it (about 1.5 min)."""
    fit_linear(load("train") + load_udhr(), c=c, keep=keep, seed=seed).save(Path(out_path))


if __name__ == "__main__":
    # The shipped models were trained with these defaults:
    #   python -m pipeline.training.langid linear   -> pipeline/models/lid_linear75.npz (about 1.5 min)
    #   python -m pipeline.training.langid fasttext -> pipeline/models/lid_lingua75.ftz (about 2 min)
    kind = sys.argv[1] if len(sys.argv) > 1 else "linear"
    if kind not in ("linear", "fasttext"):
        sys.exit(f"usage: python -m pipeline.training.langid [linear|fasttext] [OUT]; got {kind!r}")
    default = "pipeline/models/lid_linear75.npz" if kind == "linear" else "pipeline/models/lid_lingua75.ftz"
    out = sys.argv[2] if len(sys.argv) > 2 else default
    (train_linear if kind == "linear" else train)(out)
