"""Ablation statistics on inputs whose answers are known by hand or from published tables."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from pipeline.ablation.analysis import analyse, final_rows
from pipeline.ablation.stats import (
    describe,
    ngram_entropy,
    paired_test,
    power_law_fit,
    shannon_entropy,
    welch_test,
)

# Fixed seed-sweep-like samples (final bpb of two arms) for the comparisons with scipy's own tests.
ARM_A = [0.91, 0.95, 0.88, 0.93, 0.90]
ARM_B = [0.97, 1.02, 0.99, 1.05, 0.96, 1.01]


@pytest.mark.parametrize(
    ("n", "q975"),
    [(2, 12.7062), (3, 4.3027), (5, 2.7764), (11, 2.2281), (31, 2.0423)],  # Student t tables, df = n - 1
)
def test_interval_uses_t_table_quantiles(n: int, q975: float) -> None:
    d = describe([float(i % 2) for i in range(n)])
    assert (d["ci_high"] - d["mean"]) / d["se"] == pytest.approx(q975, abs=1e-4)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_describe_matches_scipy_interval(confidence: float) -> None:
    d = describe(ARM_A, confidence)
    low, high = sps.t.interval(confidence, len(ARM_A) - 1, loc=np.mean(ARM_A), scale=sps.sem(ARM_A))
    assert d["se"] == pytest.approx(sps.sem(ARM_A), rel=1e-12)
    assert d["ci_low"] == pytest.approx(low, abs=1e-12) and d["ci_high"] == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("a", "b"), [(ARM_A, ARM_B), (ARM_B, ARM_A), ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])])
def test_welch_matches_scipy_ttest_ind(a: list[float], b: list[float], confidence: float) -> None:
    r = welch_test(a, b, confidence)
    ref = sps.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(confidence)
    assert r["t"] == pytest.approx(ref.statistic, rel=1e-12) and r["df"] == pytest.approx(ref.df, rel=1e-12)
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert r["ci_low"] == pytest.approx(ci.low, abs=1e-12) and r["ci_high"] == pytest.approx(ci.high, abs=1e-12)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_matches_scipy_ttest_rel(confidence: float) -> None:
    b = ARM_B[: len(ARM_A)]
    r = paired_test(ARM_A, b, confidence)
    ref = sps.ttest_rel(ARM_A, b)
    ci = ref.confidence_interval(confidence)
    assert r["t"] == pytest.approx(ref.statistic, rel=1e-12) and r["df"] == ref.df
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert r["ci_low"] == pytest.approx(ci.low, abs=1e-12) and r["ci_high"] == pytest.approx(ci.high, abs=1e-12)


def test_tests_without_spread_get_a_defined_answer() -> None:
    # scipy answers NaN here; a sweep whose arms agree to the last digit must still get a verdict.
    assert welch_test([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])["p"] == 1.0
    shifted = paired_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert shifted["p"] == 0.0 and shifted["t"] == math.inf and shifted["ci_low"] == shifted["ci_high"] == 1.0


def test_describe_by_hand() -> None:
    d = describe([1.0, 2.0, 3.0])
    # mean 2, sd sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1, se 1/sqrt(3), half width t(0.975, 2) * se
    assert d["n"] == 3 and d["mean"] == 2.0 and d["sd"] == pytest.approx(1.0)
    half = 4.302652729749 / math.sqrt(3)
    assert d["ci_low"] == pytest.approx(2 - half, abs=1e-9) and d["ci_high"] == pytest.approx(2 + half, abs=1e-9)
    one = describe([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["sd"])


def test_welch_by_hand() -> None:
    r = welch_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    # diff -3; each variance 1, se = sqrt(1/3 + 1/3); equal variances and sizes give df = 4
    assert r["diff"] == -3.0 and r["se"] == pytest.approx(math.sqrt(2 / 3))
    assert r["t"] == pytest.approx(-3 / math.sqrt(2 / 3)) and r["df"] == pytest.approx(4.0)
    # for df=4 the two-sided tail has a closed form: 1 - t(6 + t^2) / (t^2 + 4)^1.5 ... evaluated here:
    t = abs(r["t"])
    closed = 1 - t * (6 + t * t) / (t * t + 4) ** 1.5
    assert r["p"] == pytest.approx(closed, abs=1e-10)
    assert r["p"] == pytest.approx(0.021312, abs=1e-6)  # scipy.stats.ttest_ind(..., equal_var=False)
    assert r["ci_low"] < -3 < r["ci_high"] < 0
    same = welch_test([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert same["p"] == 1.0


def test_paired_by_hand() -> None:
    r = paired_test([1.0, 2.0, 3.5], [2.0, 3.0, 4.0])
    # differences -1, -1, -0.5: mean -5/6, sd sqrt(1/12), se sd/sqrt(3) = 1/6, t = -5, df 2
    assert r["diff"] == pytest.approx(-5 / 6) and r["t"] == pytest.approx(-5.0) and r["df"] == 2
    assert r["p"] == pytest.approx(1 - 5 / math.sqrt(27), abs=1e-12)  # df=2 closed form
    with pytest.raises(ValueError):
        paired_test([1.0, 2.0], [1.0])


def test_power_law_fit_recovers_known_exponent() -> None:
    tokens = np.array([1e3, 3e3, 1e4, 3e4, 1e5, 1e6])
    exact = power_law_fit(tokens, 5.0 * tokens**-0.3 + 1.5)
    assert exact["b"] == pytest.approx(0.3, abs=1e-6) and exact["c"] == pytest.approx(1.5, abs=1e-6)
    assert exact["a"] == pytest.approx(5.0, rel=1e-5) and exact["r2"] == pytest.approx(1.0) and exact["monotone"]
    # three seeds per budget with seed noise: the exponent still comes back close
    rng = np.random.default_rng(0)
    t = np.repeat(tokens, 3)
    noisy = power_law_fit(t, 5.0 * t**-0.3 + 1.5 + rng.normal(0, 0.003, len(t)))
    assert noisy["b"] == pytest.approx(0.3, abs=0.05) and noisy["n_points"] == 18
    # a pure power law (c = 0) is the log-log line
    pure = power_law_fit(tokens, 7.0 * tokens**-0.2)
    assert pure["loglog"]["b"] == pytest.approx(0.2) and pure["loglog"]["a"] == pytest.approx(7.0)
    # ...and the three-parameter fit puts its floor exactly at the bound, as the report says
    assert pure["c"] == 0.0 and pure["b"] == pytest.approx(0.2, rel=1e-6)


def test_power_law_fit_flags_non_monotone() -> None:
    fit = power_law_fit([1e3, 2e3, 4e3, 8e3], [3.0, 2.5, 2.7, 2.2])
    assert not fit["monotone"]
    with pytest.raises(ValueError, match="two distinct"):
        power_law_fit([1e3, 1e3], [2.0, 2.1])


def test_entropies() -> None:
    assert shannon_entropy([1, 1, 1, 1]) == pytest.approx(2.0)
    assert shannon_entropy([5, 0]) == 0.0
    seq = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    assert ngram_entropy(seq, 1, 2) == pytest.approx(1.0)
    # bigrams 01,10,01,10,01,10,01: counts 4 and 3
    assert ngram_entropy(seq, 2, 2) == pytest.approx(shannon_entropy([4, 3]))


def _results(values: dict[str, list[float]], steps: int = 2) -> pl.DataFrame:
    rows = []
    for arm, finals in values.items():
        for seed, final in enumerate(finals):
            for step in range(1, steps + 1):
                bpb = final + (steps - step) * 0.5  # earlier steps are worse; only the last counts
                for source in ("web", "all"):
                    rows.append(
                        {
                            "arm": arm,
                            "level_quality": arm,
                            "seed": seed,
                            "split": "val",
                            "source": source,
                            "step": step,
                            "tokens": step * 100,
                            "loss": bpb * math.log(2),
                            "bpb": bpb,
                        }
                    )
    return pl.DataFrame(rows)


def test_analysis_on_known_results() -> None:
    results = _results({"base": [1.0, 1.1, 1.2], "good": [0.5, 0.6, 0.7], "same": [1.0, 1.2, 1.1]})
    assert final_rows(results)["step"].unique().to_list() == [2]
    an = analyse(results, baseline="base")
    assert an["arms"] == ["base", "good", "same"] and an["sources"] == ["web", "all"]
    cell = next(r for r in an["final"] if (r["arm"], r["source"], r["metric"]) == ("good", "web", "bpb"))
    assert cell["mean"] == pytest.approx(0.6) and cell["sd"] == pytest.approx(0.1)
    verdict = {(r["arm"], r["source"]): r for r in an["comparisons"] if r["metric"] == "bpb"}
    assert verdict[("good", "web")]["verdict"] == "better"
    assert verdict[("good", "web")]["diff"] == pytest.approx(-0.5)
    assert verdict[("same", "web")]["verdict"] == "within seed noise"
    assert verdict[("same", "web")]["p"] == pytest.approx(1.0)
    assert all(r["arm"] != "base" for r in an["comparisons"])
    paired = analyse(results, baseline="base", test="paired")
    assert {r["test"] for r in paired["comparisons"]} == {"paired"}


def test_token_sample_follows_the_mixture_and_duplicates_count_by_text() -> None:
    from pipeline.ablation.data import exact_duplicate_rate, weighted_token_sample

    lists = pl.DataFrame(
        {"source": ["a"] * 50 + ["b"] * 50, "tokens": [[1, 1]] * 50 + [[2, 2]] * 50},
        schema={"source": pl.String, "tokens": pl.List(pl.UInt16)},
    )
    even = weighted_token_sample(lists, {"a": 1.0, "b": 1.0}, 40, seed=0)
    skewed = weighted_token_sample(lists, {"a": 3.0, "b": 1.0}, 40, seed=0)
    left_out = weighted_token_sample(lists, {"a": 1.0, "b": 0.0}, 40, seed=0)
    assert len(even) == len(skewed) == 40
    assert (even == 1).sum() == 20 and (skewed == 1).sum() == 30 and set(left_out) == {1}
    docs = pl.DataFrame({"text": ["A  b", "a b", "c", "d"]})
    assert exact_duplicate_rate(docs) == 0.25 and exact_duplicate_rate(docs.head(0)) == 0.0
