"""The linear language-ID model: its vectorised features, training, storage and accuracy."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.langid.linear import LinearLangId, raw_counts


def _dense(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    char, word = raw_counts(texts)
    return char.toarray(), word.toarray()


def test_char_ngrams_stay_inside_padded_words():
    char, word = _dense(["ab", "ab cd", "cd"])
    # " ab ": a, b; " a", "ab", "b "; " ab", "ab "; " ab " -> 8 n-grams, 1 word.
    assert char[0].sum() == 8 and word[0].sum() == 1
    # No n-gram spans the space between two words: the pair is exactly the two words' sum.
    np.testing.assert_array_equal(char[1], char[0] + char[2])
    np.testing.assert_array_equal(word[1], word[0] + word[2])


def test_words_are_split_at_punctuation_and_hashed_anywhere_alike():
    _, word = _dense(["ab", "xyz, ab!", "«ab»"])
    ab = word[0].nonzero()[0]
    assert word[1, ab] == 1 and word[1].sum() == 2
    assert word[2, ab] == 1 and word[2].sum() == 1


def test_features_do_not_depend_on_the_batch():
    texts = ["hello world", "", "zażółć gęślą jaźń", "日本語のテキスト", "a"]
    char_all, word_all = _dense(texts)
    for i, text in enumerate(texts):
        char_one, word_one = _dense([text])
        np.testing.assert_array_equal(char_all[i], char_one[0])
        np.testing.assert_array_equal(word_all[i], word_one[0])


def _toy_language(syllables: list[str], rng: random.Random, n: int) -> list[str]:
    return [
        " ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(4, 9)))
        for _ in range(n)
    ]


TOY = {"aa": ["ka", "lo", "mi", "tu"], "bb": ["shi", "ne", "rou", "ga"], "cc": ["zwe", "pli", "dro", "ux"]}


@pytest.mark.parametrize("langs", [["aa", "bb", "cc"], ["aa", "bb"]])
def test_fit_save_load_predict(tmp_path, langs):
    pytest.importorskip("sklearn")
    from pipeline.training.langid import fit_linear

    rng = random.Random(0)
    rows = [(lang, "sentence", text) for lang in langs for text in _toy_language(TOY[lang], rng, 60)]
    model = fit_linear(rows, keep=0.5)
    test = {lang: _toy_language(TOY[lang], rng, 10) for lang in langs}
    texts = [t for lang in langs for t in test[lang]]
    gold = [lang for lang in langs for _ in test[lang]]
    pred, prob = model.predict(texts)
    assert pred == gold
    assert np.all((prob > 1 / len(langs)) & (prob <= 1.0 + 1e-6))
    model.save(tmp_path / "m.npz")
    loaded = LinearLangId.load(tmp_path / "m.npz")
    pred2, prob2 = loaded.predict(texts)
    assert pred2 == pred and loaded.labels == sorted(langs)
    np.testing.assert_allclose(prob2, prob, atol=0.05)  # int8 weights and float16 idf
    # The language stage takes a saved linear model by path, like a fastText file.
    from pipeline.langid.stage import predict

    assert predict(texts, str(tmp_path / "m.npz"))[0] == gold
