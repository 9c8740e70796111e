"""Language ID: offline models, majority language of mixed documents, per-language thresholds."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest

from pipeline.langid.stage import LangIdConfig, identify, label_rejected, model_path, predict
from pipeline.schema import to_rejected

EN = "The committee will meet again next week to discuss the budget and the new school building."
DE = "Der Ausschuss wird sich nächste Woche erneut treffen, um den Haushalt zu besprechen."
FR = "Le comité se réunira de nouveau la semaine prochaine pour discuter du budget de l'école."


def _df(texts: list[str], sources: list[str] | None = None) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame({"id": [str(i) for i in range(n)], "text": texts, "source": sources or ["web"] * n})


@pytest.mark.parametrize("model", ["lid176", "lingua75", "linear75"])
def test_predict_offline_models(model):
    if not model_path(model).is_file():
        pytest.skip(f"{model} model file missing")
    langs, scores = predict([EN, DE, FR], model)
    assert langs == ["en", "de", "fr"]
    assert all(0.5 < s <= 1.0001 for s in scores)


def test_identify_majority_language_and_rows_kept_or_rejected():
    mixed = "\n\n".join([EN, EN, EN, DE])  # mostly English with a German paragraph
    df = _df([mixed, DE, "", "def f(x):\n    return x\n"], ["web", "web", "web", "code"])
    res = identify(df, LangIdConfig(keep=["en"], min_score=0.3))
    assert len(res.kept) + len(res.rejected) == len(df)
    kept = dict(zip(res.kept["id"].to_list(), res.kept["lang"].to_list(), strict=True))
    assert kept["0"] == "en" and "3" in kept  # code is labelled, never dropped for its language
    rej = dict(zip(res.rejected["id"].to_list(), res.rejected["reason"].to_list(), strict=True))
    assert rej["1"] == "lang_not_kept:de"
    # lang and lang_score are on rejected rows too
    assert res.rejected["lang"].null_count() == 0 and res.rejected["lang_score"].null_count() == 0
    score_mixed = res.kept.filter(pl.col("id") == "0")["lang_score"][0]
    score_pure = identify(_df([EN]), LangIdConfig(keep=[]))
    assert score_mixed < score_pure.kept["lang_score"][0]  # a mix is less certain than a pure text


def test_per_language_thresholds():
    mixed = "\n\n".join([EN, EN, EN, DE])  # English, but less certain than a pure text
    df = _df([mixed, DE])
    en_score = identify(_df([mixed]), LangIdConfig(keep=[]))
    assert en_score.kept["lang_score"][0] < 1.0
    strict_en = LangIdConfig(keep=[], min_score=0.0, min_score_per_lang={"en": 1.0})
    res = identify(df, strict_en)
    assert res.rejected["reason"].to_list() == ["lang_low_score"] and res.kept["lang"].to_list() == ["de"]
    assert len(identify(df, LangIdConfig(keep=[], min_score=0.0)).kept) == 2


@pytest.mark.parametrize("model", ["lingua75", "linear75"])
def test_text_without_letters_has_no_language(model):
    langs, scores = predict(["", "   ", "1234 5678"], model)
    assert langs == ["und"] * 3 and scores.tolist() == [0.0] * 3
    res = identify(_df(["", EN]), LangIdConfig(keep=[], min_score=0.0))
    assert res.kept["lang"].to_list() == ["und", "en"]


def test_rows_rejected_before_langid_get_a_language():
    # an ingest reject with text, one without (a truncated file), one a later stage already labelled
    df = _df([DE, None, FR]).with_columns(
        pl.Series("lang", [None, None, "fr"], dtype=pl.String), pl.Series("lang_score", [None, None, 0.42])
    )
    out = label_rejected(to_rejected(df, "ingest", "broken"), LangIdConfig())
    assert out["lang"].to_list() == ["de", "und", "fr"]
    assert out["lang_score"][0] > 0.5 and out["lang_score"].to_list()[1:] == [0.0, 0.42]
    assert out.drop("lang", "lang_score").equals(to_rejected(df, "ingest", "broken").drop("lang", "lang_score"))


@pytest.mark.parametrize(("model", "floor"), [("lingua75", 0.97), ("linear75", 0.98)])
def test_shared_lingua_sentences(shared_data, model, floor):
    if not model_path(model).is_file():
        pytest.skip(f"{model} model file missing")
    rows = []
    for line in gzip.open(shared_data / "multilingual" / "lingua_testdata_shared.jsonl.gz", "rt"):
        r = json.loads(line)
        if r["kind"] == "sentence" and r["line"] % 5 == 0:  # held out from training
            rows.append(r)
    langs, _ = predict([" ".join(r["text"].split()) for r in rows], model)
    acc = sum(p == r["lang"] for p, r in zip(langs, rows, strict=True)) / len(rows)
    assert acc >= floor, acc
