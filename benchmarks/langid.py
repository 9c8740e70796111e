# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
"""Language ID: accuracy per language and per length class, and items/s, on the lingua test data.

Data: ``../shared/data/multilingual/lingua_testdata_shared.jsonl.gz`` (75 languages, ISO 639-1;
kinds sentence / word_pair / single_word). Our own models (``linear75``, the default, and the
fastText ``lingua75``) are trained on the lines with ``line % 5 != 0``, so every model is scored
on the held-out lines ``line % 5 == 0``.
Speed: sentences/s through ``pipeline.langid.stage.predict`` on one core.

Run: .venv/bin/python benchmarks/langid.py [--models lid176,lingua75] [--per-language]
"""

from __future__ import annotations

import sys

# Run as a script, this folder is sys.path[0]: a sibling named like a stdlib module (tokenize.py)
# would shadow it, so the folder is dropped and the repository root used instead.
sys.path[:1] = [str(__import__("pathlib").Path(__file__).resolve().parents[1])]

import argparse
import importlib.util
import os
import time
from collections import defaultdict

from pipeline.langid.stage import model_path, predict
from pipeline.training.langid import LINGUA, load


def _lingua_predict(texts: list[str]) -> tuple[list[str], list[float]]:
    """lingua-py (high-accuracy mode, all its 75 languages): comparison only, not a pipeline model."""
    from lingua import LanguageDetectorBuilder

    global _LINGUA
    if _LINGUA is None:
        _LINGUA = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
    res = _LINGUA.detect_languages_in_parallel_of(texts)
    return [r.iso_code_639_1.name.lower() if r is not None else "und" for r in res], [0.0] * len(texts)


_LINGUA = None


def run_model(texts: list[str], name: str):
    if name == "lingua":
        return _lingua_predict(texts)
    return predict(texts, name)


# lid176 labels that name the same language as lingua's code.
_ALIASES = {"no": "nb"}
KINDS = ("sentence", "word_pair", "single_word")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="linear75,lingua75,lid176,lingua", help="lingua = lingua-py, if installed")
    ap.add_argument("--per-language", action="store_true", help="print every language's sentence accuracy")
    args = ap.parse_args()
    if not LINGUA.is_file():
        print(f"skipped: {LINGUA} not found")
        return
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    except (AttributeError, OSError):
        pass
    rows = load("test")
    langs = sorted({r[0] for r in rows})
    print(f"{len(rows)} held-out items, {len(langs)} languages; one core")
    for name in args.models.split(","):
        if name in ("linear75", "lingua75") and not model_path(name).is_file():
            print(f"{name}: model file missing (train it: python -m pipeline.training.langid)")
            continue
        if name == "lingua" and importlib.util.find_spec("lingua") is None:
            print("lingua: lingua-language-detector not installed; skipped")
            continue
        texts = [" ".join(r[2].split()) for r in rows]
        run_model(texts[:10], name)  # load the model outside the timing
        per_s = {}
        for kind in KINDS:
            items = [t for t, r in zip(texts, rows, strict=True) if r[1] == kind]
            t0 = time.perf_counter()
            run_model(items, name)
            per_s[kind] = len(items) / (time.perf_counter() - t0)
        sent_s = per_s["sentence"]
        pred, _ = run_model(texts, name)
        ok: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for (lang, kind, _), p in zip(rows, pred, strict=True):
            c = ok[(lang, kind)]
            c[0] += _ALIASES.get(p, p) == lang
            c[1] += 1
        print(f"== {name}: {sent_s:,.0f} sentences/s")
        for kind in KINDS:
            accs = [ok[(lang, kind)][0] / ok[(lang, kind)][1] for lang in langs if ok[(lang, kind)][1]]
            n_ok = sum(ok[(lang, kind)][0] for lang in langs)
            n = sum(ok[(lang, kind)][1] for lang in langs)
            print(f"  {kind:12s} accuracy {n_ok / max(n, 1):.4f} (mean over languages {sum(accs) / len(accs):.4f}, "
                  f"worst {min(accs):.2f}), {per_s[kind]:,.0f} items/s")  # fmt: skip
        per = sorted((ok[(lang, "sentence")][0] / max(ok[(lang, "sentence")][1], 1), lang) for lang in langs)
        # Every language for the pipeline's default model (the first listed), the weakest for the rest.
        whole = args.per_language or name == args.models.split(",")[0]
        shown = per if whole else per[:8]
        label = "sentence accuracy per language" if whole else "8 weakest languages on sentences"
        print(f"  {label}: " + ", ".join(f"{lang} {a:.2f}" for a, lang in shown))
    print("targets: >= 98% on sentences across the 75 lingua languages; >= 5,000 sentences/s on one core")


if __name__ == "__main__":
    main()
