"""The ablation report: ``report/report.md`` and a self-contained ``report/index.html`` (plots
embedded as PNG data URIs) from an ablation's summary and results table."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.atomic import atomic_write
from pipeline.report import Section, write_pages


def _sub(sec: Section, title: str) -> None:
    sec.md += [f"### {title}", ""]
    sec.html.append(f"<h3>{html.escape(title)}</h3>")


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _interval(r: dict[str, Any]) -> str:
    return f"{_fmt(r['mean'])} ± {_fmt(r['sd'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, png: Path) -> None:
    fig.tight_layout()
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png"))
    _pyplot().close(fig)


# --- sections ----------------------------------------------------------------------------------


def _plan_section(summary: dict[str, Any]) -> Section:
    plan = summary["plan"]
    t = plan["train"]
    sec = Section("Plan")
    if plan.get("description"):
        sec.text(plan["description"])
    sec.text(
        f"Seeds {plan['seeds']}; model preset `{t['preset']}`, batch {t['batch_size']} x {t['seq_len']} tokens "
        f"({summary['tokens_per_step']:,} tokens per step), peak learning rate {t['lr']}; token budget at scale 1: "
        f"{summary['base_tokens']:,} training tokens per arm. Baseline arm: `{summary['baseline']}`; test: "
        f"{summary['analysis']['test']} t test at alpha = {summary['analysis']['alpha']}."
    )
    sec.text(
        "Base curation shared by every arm: "
        + (" -> ".join(s["name"] for s in plan["curation"]) or "none")
        + f"; then the evaluation set is held out. Shared tokenizer: vocabulary "
        f"{summary['shared_tokenizer']['vocab_size']:,}."
    )
    rows = []
    for arm in summary["arms"]:
        stages = " -> ".join(s["name"] for s in arm["stages"]) or "(none)"
        mix = ", ".join(f"{s} {w:.2f}" for s, w in arm["weights"].items())
        rows.append(
            [
                arm["name"],
                ", ".join(f"{a}={v}" for a, v in arm["levels"].items()),
                stages,
                mix,
                arm["budget_tokens"],
                arm["steps"],
            ]
        )
    sec.table(["arm", "levels", "arm stages", "mixture (token shares)", "training tokens", "steps"], rows)
    return sec


def _eval_section(summary: dict[str, Any]) -> Section:
    ev = summary["eval_set"]
    sec = Section("Evaluation set")
    plan_eval = summary["plan"]["eval"]
    sec.text(
        f"One held-out set for every arm: per training source, {plan_eval['fraction']:.0%} of its document groups "
        f"(at most {plan_eval['max_docs_per_source']}), chosen by a seeded hash, plus up to as many documents "
        "of each evaluation-only input. "
        f"These documents, and training documents with at least {plan_eval['max_overlap']:.0%} of their word "
        f"{plan_eval['ngram']}-grams in the evaluation text, are removed from every arm before its curation. "
        + (
            f"Evaluation documents are cut to their first {plan_eval['max_doc_chars']:,} characters. "
            if plan_eval.get("max_doc_chars")
            else ""
        )
        + f"Each model scores at most {ev['scored_tokens_per_source_max']:,} tokens per source, from the start of "
        "the source's evaluation stream."
    )
    rows = [[s, v["docs"], v["bytes"], ev["tokens_by_source"].get(s, 0)] for s, v in sorted(ev["by_source"].items())]
    sec.table(["source", "documents", "bytes", "tokens (shared tokenizer)"], rows)
    return sec


def _results_section(summary: dict[str, Any], report_dir: Path) -> Section:
    an = summary["analysis"]
    sec = Section("Final validation bits per byte and loss per source")
    sec.text(
        "Mean ± standard deviation over seeds [95% t interval of the mean], at the end of training. Bits per "
        "byte do not depend on the tokenizer; lower is better."
    )
    for metric, label in (("bpb", "bits per byte"), ("loss", "loss (nats per token)")):
        cells = {(r["arm"], r["source"]): r for r in an["final"] if r["metric"] == metric}
        rows = [
            [arm, *(_interval(cells[(arm, s)]) if (arm, s) in cells else "–" for s in an["sources"])]
            for arm in an["arms"]
        ]
        _sub(sec, label)
        sec.table(["arm", *an["sources"]], rows)
    png = report_dir / "bpb_per_source.png"
    _plot_bpb(an, png)
    sec.image(png, "final validation bits per byte per source with 95% intervals")
    return sec


def _comparison_section(summary: dict[str, Any]) -> Section:
    an = summary["analysis"]
    sec = Section(f"Against the baseline ({summary['baseline']})")
    sec.text(
        f"Difference = arm - baseline in final bits per byte (negative: the arm is better), its 95% interval and the "
        f"{an['test']} t test's two-sided p-value over seeds. Differences with p >= {an['alpha']} are marked "
        "'within seed noise'."
    )
    rows = [
        [
            r["arm"],
            r["source"],
            f"{r['diff']:+.4f}",
            f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
            _fmt(r["p"], 3),
            r["verdict"],
        ]
        for r in an["comparisons"]
        if r["metric"] == "bpb"
    ]
    sec.table(["arm", "source", "Δ bpb", "95% interval", "p", "verdict"], rows)
    bpb = [r for r in an["comparisons"] if r["metric"] == "bpb"]
    if bpb:
        better = sum(r["verdict"] == "better" for r in bpb)
        worse = sum(r["verdict"] == "worse" for r in bpb)
        sec.text(
            f"{better} of {len(bpb)} comparisons are better than the baseline beyond seed noise, {worse} worse, "
            f"{len(bpb) - better - worse} within seed noise (uncorrected for multiple comparisons: at alpha = "
            f"{an['alpha']}, about {an['alpha'] * len(bpb):.1f} of {len(bpb)} would pass by chance alone)."
        )
    return sec


def _curves_section(summary: dict[str, Any], results: pl.DataFrame, report_dir: Path) -> Section:
    sec = Section("Loss curves")
    sec.text("Validation loss per source against training tokens: the line is the mean over seeds, the band ± one sd.")
    png = report_dir / "loss_curves.png"
    _plot_curves(results, summary["analysis"]["arms"], png)
    sec.image(png, "validation loss curves with seed bands")
    return sec


def _scaling_section(summary: dict[str, Any], report_dir: Path) -> Section | None:
    fits = summary["analysis"]["scaling"]
    if not fits:
        return None
    sec = Section("Scaling fit")
    sec.text(
        "loss = a · T^-b + c fitted to the final validation loss (and bits per byte) of every seed against training "
        "tokens T; c is the loss no amount of this data removes. `monotone`: the mean falls at every larger budget."
    )
    rows = [
        [
            f["group"],
            f["source"],
            f["metric"],
            f"{f['a']:.4g}",
            f"{f['b']:.4f}",
            f"{f['c']:.4f}",
            _fmt(f["r2"], 3),
            "yes" if f["monotone"] else "no",
            " / ".join(f"{m:.4f}" for m in f["mean_loss"]),
        ]
        for f in fits
    ]
    sec.table(["group", "source", "metric", "a", "b", "c", "R²", "monotone", "mean at each budget"], rows)
    if any(f["c"] == 0.0 for f in fits):
        sec.text(
            "c = 0 means the best fit puts the irreducible loss at its bound: over these budgets the loss does not "
            "yet bend towards a floor (typical of small, undertrained models), so only the exponent b is measured."
        )
    png = report_dir / "scaling.png"
    _plot_scaling(fits, png)
    sec.image(png, "power-law fit of loss against training tokens")
    return sec


def _diversity_section(summary: dict[str, Any]) -> Section:
    sec = Section("Diversity of each arm's training data")
    sec.text(
        "Source entropy of the planned mixture, token unigram and bigram entropy of an equal-size sample of each "
        "arm's training tokens (bits), the share of documents the arm's dedup stage removed, and the share of "
        "exact duplicates (normalised text) left in its training documents."
    )
    rows = []
    for arm in summary["arms"]:
        d = arm["diversity"]
        rows.append(
            [
                arm["name"],
                _fmt(d["source_entropy_bits"], 3),
                _fmt(d["unigram_entropy_bits"], 3),
                _fmt(d["bigram_entropy_bits"], 3),
                d["entropy_sample_tokens"],
                "–" if d["dedup_removed_rate"] is None else f"{d['dedup_removed_rate']:.1%}",
                f"{d['exact_duplicate_rate']:.1%}",
            ]
        )
    sec.table(
        [
            "arm",
            "source entropy",
            "unigram entropy",
            "bigram entropy",
            "sample tokens",
            "dedup removed",
            "exact duplicates left",
        ],
        rows,
    )
    return sec


def _cards_section(summary: dict[str, Any], top: int = 12) -> Section:
    sec = Section("Data cards")
    for arm in summary["arms"]:
        _sub(sec, f"Arm {arm['name']}")
        data = arm["data"]
        mixture = (arm["models"][0].get("mixture") or {}) if arm["models"] else {}
        sources = sorted(set(data["tokens_by_source"]) | set(data["docs_by_source"]))
        rows = []
        for s in sources:
            m = mixture.get(s) or {}
            rows.append(
                [
                    s,
                    data["docs_by_source"].get(s, 0),
                    data["tokens_by_source"].get(s, 0),
                    f"{arm['weights'].get(s, 0.0):.3f}",
                    m.get("tokens", 0),
                    m.get("epochs", 0.0),
                    "> 4 epochs" if m.get("flagged") else "",
                ]
            )
        sec.table(
            ["source", "documents", "tokens available", "mixture share", "tokens trained", "epochs", "flag"], rows
        )
        if arm["too_small_sources"]:
            sec.text(f"Left out of the mixture for too few tokens: {', '.join(arm['too_small_sources'])}.")
        stages = arm["stages_summary"]
        if stages:
            sec.table(
                ["arm stage", "docs in", "docs out", "rejected", "cached shards"],
                [
                    [s["name"], s["docs_in"], s["docs_out"], s["docs_rejected"], f"{s['cached_shards']}/{s['shards']}"]
                    for s in stages
                ],
            )
        drops = arm["drops"]
        if drops:
            sec.text(f"Documents dropped by reason (base curation, holdout and this arm's stages; top {top}):")
            sec.table(
                ["stage", "reason", "source", "documents"],
                [[d["stage"], d["reason"], d["source"], d["docs"]] for d in drops[:top]],
            )
        d = arm["diversity"]
        rate = "no dedup stage" if d["dedup_removed_rate"] is None else f"{d['dedup_removed_rate']:.1%} removed"
        pii = arm.get("pii")
        pii_text = (
            ", ".join(f"{k} {v}" for k, v in sorted((pii.get("counts") or {}).items())) or "none found"
            if pii
            else "no PII stage"
        )
        sec.text(f"Dedup: {rate}. PII replacements: {pii_text}.")
    return sec


def _generations_section(summary: dict[str, Any]) -> Section:
    g = summary["plan"]["generation"]
    sec = Section("Sample generations")
    sec.text(
        f"The seed-{summary['plan']['seeds'][0]} model of each arm continues the same prompts (temperature "
        f"{g['temperature']}, top-p {g['top_p']}, sampling seed {g['seed']}, {g['max_new_tokens']} new tokens)."
    )
    for i, prompt in enumerate(g["prompts"]):
        _sub(sec, f"Prompt: {prompt!r}")
        sec.table(
            ["arm", "continuation"],
            [[a["name"], " ".join(a["generations"][i]["text"].split())] for a in summary["arms"]],
        )
    return sec


def _lineage_section(summary: dict[str, Any]) -> Section:
    sec = Section("Lineage")
    sec.text(
        f"Every number traces to content keys in the work cache: inputs {summary.get('input_key', '–')} -> arm "
        f"training data -> tokenizer -> model (one per seed) -> evaluation set {summary['eval_set']['key']}. Code "
        f"version {summary['code_version']}."
    )
    rows = []
    for arm in summary["arms"]:
        for m in arm["models"]:
            rows.append(
                [
                    arm["name"],
                    arm["data_key"][:16],
                    arm["tokenizer_fingerprint"][:16],
                    m["seed"],
                    m["key"][:16],
                    summary["eval_set"]["key"][:16],
                    _fmt(m["final_val_bpb"]),
                ]
            )
    sec.table(["arm", "data key", "tokenizer fingerprint", "seed", "model key", "eval set key", "bpb (all)"], rows)
    return sec


# --- plots -------------------------------------------------------------------------------------


def _plot_bpb(an: dict[str, Any], png: Path) -> None:
    plt = _pyplot()
    sources, arms = an["sources"], an["arms"]
    cells = {(r["arm"], r["source"]): r for r in an["final"] if r["metric"] == "bpb"}
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sources) * max(1, len(arms)) / 2), 4), dpi=100)
    width = 0.8 / max(1, len(arms))
    for k, arm in enumerate(arms):
        xs, ys, lo, hi = [], [], [], []
        for i, s in enumerate(sources):
            r = cells.get((arm, s))
            if r is None:
                continue
            xs.append(i + k * width)
            ys.append(r["mean"])
            lo.append(r["mean"] - r["ci_low"])
            hi.append(r["ci_high"] - r["mean"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=arm)
    lows = [r["ci_low"] for r in cells.values() if not math.isnan(r["ci_low"])]
    highs = [r["ci_high"] for r in cells.values() if not math.isnan(r["ci_high"])]
    if lows and highs:  # differences between arms are small next to the values: do not start at zero
        pad = 0.1 * (max(highs) - min(lows)) or 0.05
        ax.set_ylim(max(0.0, min(lows) - pad), max(highs) + pad)
    ax.set_xticks([i + width * (len(arms) - 1) / 2 for i in range(len(sources))], sources)
    ax.set_ylabel("validation bits per byte")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, png)


def _plot_curves(results: pl.DataFrame, arms: list[str], png: Path) -> None:
    plt = _pyplot()
    val = results.filter(pl.col("split") == "val")
    sources = [*sorted(s for s in val["source"].unique().to_list() if s != "all"), "all"]
    cols = min(3, len(sources))
    rows_n = math.ceil(len(sources) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.2 * rows_n), dpi=100, squeeze=False)
    agg = val.group_by("arm", "source", "tokens").agg(
        pl.col("loss").mean().alias("m"), pl.col("loss").std().fill_null(0.0).alias("s")
    )
    for idx, source in enumerate(sources):
        ax = axes[idx // cols][idx % cols]
        for arm in arms:
            pts = agg.filter((pl.col("arm") == arm) & (pl.col("source") == source)).sort("tokens")
            if not pts.height:
                continue
            x, m, s = pts["tokens"].to_numpy(), pts["m"].to_numpy(), pts["s"].to_numpy()
            (line,) = ax.plot(x, m, marker=".", label=arm, linewidth=1)
            ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2)
        ax.set_title(source, fontsize=9)
        ax.set_xlabel("training tokens", fontsize=8)
        ax.set_ylabel("validation loss", fontsize=8)
        ax.grid(alpha=0.3)
    for idx in range(len(sources), rows_n * cols):
        axes[idx // cols][idx % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    _save(fig, png)


def _plot_scaling(fits: list[dict[str, Any]], png: Path) -> None:
    import numpy as np

    plt = _pyplot()
    shown = [f for f in fits if f["metric"] == "loss"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for f in shown:
        x = np.asarray(f["budgets"], dtype=float)
        (pts,) = ax.plot(x, f["mean_loss"], "o", label=f"{f['group']} / {f['source']} (b={f['b']:.3f})")
        grid = np.geomspace(x.min(), x.max(), 50)
        ax.plot(grid, f["a"] * grid ** (-f["b"]) + f["c"], "-", color=pts.get_color(), linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("final validation loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    _save(fig, png)


# --- page --------------------------------------------------------------------------------------


def write_ablation_report(out_dir: Path, summary: dict[str, Any], results: pl.DataFrame) -> Path:
    """Write ``report/report.md`` and ``report/index.html`` (images embedded) and the plots' PNGs."""
    report_dir = Path(out_dir) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    sections = [
        _plan_section(summary),
        _eval_section(summary),
        _results_section(summary, report_dir),
        _comparison_section(summary),
        _curves_section(summary, results, report_dir),
        _scaling_section(summary, report_dir),
        _diversity_section(summary),
        _cards_section(summary),
        _generations_section(summary),
        _lineage_section(summary),
    ]
    sections = [s for s in sections if s is not None]
    title = f"Refinery ablation report: plan `{summary['plan']['name']}`"
    intro = (
        f"{len(summary['arms'])} arms x {len(summary['plan']['seeds'])} seeds; results table: results.parquet (one "
        f"row per arm x seed x source x step). Run time {summary['seconds']:.0f} s."
    )
    write_pages(report_dir, title, intro, sections)
    return report_dir
