"""Finding PII in many strings at once, and replacing what was found.

The vectorised candidate pass, obfuscated and encoded forms read through their views, ``scan`` on the candidates,
findings mapped back to the originals; ``find_pii`` (what the stage finds in each of a list of texts) and
``apply_findings`` (replace findings under the configured policy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import polars as pl
from presidio_analyzer import RecognizerResult

from pipeline.pii.config import PiiConfig
from pipeline.pii.recognizers import VIEW_TRIGGERS, ViewMap, view_of
from pipeline.pii.scan import CANDIDATE_PARTS, digit_parts, rust_patterns, scan


def _to_original(r: RecognizerResult, view_map: ViewMap | None) -> RecognizerResult:
    """A finding in view offsets, in the original's."""
    if view_map is None:
        return r
    return RecognizerResult(r.entity_type, view_map.original(r.start), view_map.original(r.end), r.score)


@dataclass
class Candidates:
    """The strings of one group (a column, or metadata values) worth handing to presidio."""

    rows: list[int]  # positions in the group
    texts: list[str]  # their views
    sources: list[str]  # the source the guards score them as
    entities: list[list[str]]  # entity types worth looking for in each
    rust: dict[str, list[list[str]]]  # window-search matches found in polars (see ``_match_spans``)
    ner: bool  # whether the optional NER model reads them too
    rules: list[list[str]] = field(default_factory=list)  # view triggers that matched each (when asked for)

    def take(self, keep: list[int]) -> Candidates:
        """The entries at ``keep`` (indices into the lists), in that order."""
        return Candidates(
            [self.rows[k] for k in keep],
            [self.texts[k] for k in keep],
            [self.sources[k] for k in keep],
            [self.entities[k] for k in keep],
            {p: [m[k] for k in keep] for p, m in self.rust.items()},
            self.ner,
        )


def _candidate_pass(
    views: pl.Series,
    scoring: pl.Series,
    applies: pl.Series,
    cfg: PiiConfig,
    ner: bool = False,
    triggers: bool = False,
) -> Candidates:
    """One vectorised ``contains()`` per entity type over ``views``: which strings may hold which PII. The
    window-search patterns that run in polars are extracted in the same pass (``_match_spans``); where one is
    also the entity's candidate pattern, "matched anything" stands for the contains() check. ``triggers``: the
    view triggers run in the same pass too, and strings matching one are kept with the names in ``rules``."""
    entities = list(cfg.entities)
    with_ner = ner and bool(cfg.ner_model)
    if not (entities or with_ner or triggers) or views.len() == 0:
        return Candidates([], [], [], [], {}, with_ner)
    in_polars = rust_patterns(entities)
    extracted = {p: f"_x{k}" for k, p in enumerate(in_polars)}
    trig = {f"_v{k}": p for k, p in enumerate(VIEW_TRIGGERS.values())} if triggers else {}

    def has_candidate(e: str, rewrite: Callable[[str], str]) -> pl.Expr:
        return pl.any_horizontal(
            pl.col(extracted[p]).list.len() > 0 if p in extracted else pl.col("text").str.contains(rewrite(p))
            for p in CANDIDATE_PARTS[e]
        )

    def candidates(part: pl.DataFrame, rewrite: Callable[[str], str]) -> pl.DataFrame:
        wanted = [pl.any_horizontal(entities)] if entities else []
        wanted += [pl.col("_a")] if with_ner else []
        wanted += [pl.col("_a") & pl.any_horizontal(list(trig))] if trig else []
        return (
            part.with_columns(
                *[pl.col("text").str.extract_all(rewrite(p)).alias(c) for p, c in extracted.items()],
                *[pl.col("text").str.contains(p).fill_null(False).alias(c) for c, p in trig.items()],
            )
            .with_columns([(pl.col("_a") & has_candidate(e, rewrite)).fill_null(False).alias(e) for e in entities])
            .filter(pl.any_horizontal(wanted))
        )

    docs = pl.DataFrame({"text": views, "source": scoring, "_a": applies}).with_row_index("_i")
    parts = [candidates(part, rewrite) for part, rewrite in digit_parts(docs, "text")]
    cand = pl.concat(parts).sort("_i") if len(parts) > 1 else parts[0]
    if cand.height == 0:
        return Candidates([], [], [], [], {}, with_ner)
    rows = cand.to_dict(as_series=False)
    ents = [[e for e in entities if rows[e][k]] for k in range(cand.height)]
    rust = {p: rows[c] for p, c in extracted.items()}
    names = list(VIEW_TRIGGERS)
    rules = [[n for n, c in zip(names, trig, strict=True) if rows[c][k]] for k in range(cand.height)] if trig else []
    return Candidates(rows["_i"], rows["text"], rows["source"], ents, rust, with_ner, rules)


def scan_groups(groups: list[Candidates], cfg: PiiConfig) -> list[list[list[RecognizerResult]]]:
    """``scan`` over the candidates of every group at once (one set of presidio calls), split per group."""
    texts = [t for g in groups for t in g.texts]
    if not texts:
        return [[] for _ in groups]
    # every group with candidates holds the same patterns; the others add no strings
    keys = dict.fromkeys(p for g in groups for p in g.rust)
    rust = {p: [m for g in groups for m in g.rust.get(p, [])] for p in keys}
    found = scan(
        texts,
        [s for g in groups for s in g.sources],
        [e for g in groups for e in g.entities],
        cfg,
        rust,
        [g.ner for g in groups for _ in g.texts],
    )
    out = []
    pos = 0
    for g in groups:
        out.append(found[pos : pos + len(g.texts)])
        pos += len(g.texts)
    return out


# A finding in original offsets, with the value its replacement is computed from: the view's plain form
# ("jane@example.com" for "jane [at] example [dot] com"), so a hash is the same however the value was written.
Finding = tuple[RecognizerResult, str]


def findings_of(
    group: Candidates, results: list[list[RecognizerResult]], maps: dict[int, ViewMap]
) -> dict[int, list[Finding]]:
    """Per position in the group, its findings mapped back from the view to the original."""
    out: dict[int, list[Finding]] = {}
    for row, view, found in zip(group.rows, group.texts, results, strict=True):
        if found:
            view_map = maps.get(row)
            out[row] = [(_to_original(r, view_map), view[r.start : r.end]) for r in found]
    return out


def candidates_of(
    values: pl.Series, scoring: pl.Series, applies: pl.Series, cfg: PiiConfig, ner: bool = False, sieve: bool = False
) -> tuple[Candidates, dict[int, ViewMap]]:
    """The candidates among ``values``, read through their views (``view_of``: obfuscated and encoded forms
    rewritten), and the maps back from the rewritten ones. ``sieve``: first keep the values that match one
    union of every candidate pattern and view trigger (one pass instead of ~30, for the many short strings of
    URL and metadata columns, most of which hold nothing)."""
    keep: list[int] | None = None
    if sieve and values.len():
        hit = (applies & values.str.contains(any_candidate(tuple(cfg.entities)))).fill_null(False)
        keep = hit.arg_true().to_list()
        values, scoring, applies = values.gather(keep), scoring.gather(keep), applies.gather(keep)
    cands, maps = _with_views(_candidate_pass(values, scoring, applies, cfg, ner, triggers=True), cfg)
    if keep is not None:  # back to positions in the whole group
        cands.rows = [keep[i] for i in cands.rows]
        maps = {keep[i]: m for i, m in maps.items()}
    return cands, maps


def _with_views(cands: Candidates, cfg: PiiConfig) -> tuple[Candidates, dict[int, ViewMap]]:
    """``cands`` with the strings a view trigger matched replaced by their views, whose candidates are found
    again (a second pass over those few); strings left with nothing to look for are dropped."""
    redo = [(k, view) for k, text, rules in zip(range(len(cands.rows)), cands.texts, cands.rules, strict=True)
            if rules and (view := view_of(text, rules)) is not None]  # fmt: skip
    redone = {k for k, _ in redo}
    keep = [k for k in range(len(cands.rows)) if k not in redone and (cands.entities[k] or cands.ner)]
    if not redo:
        return (cands.take(keep) if len(keep) < len(cands.rows) else cands), {}
    src = pl.Series([cands.sources[k] for k, _ in redo], dtype=pl.String)
    views = pl.Series([v[0] for _, v in redo], dtype=pl.String)
    again = _candidate_pass(views, src, pl.Series([True] * len(redo)), cfg, cands.ner)
    maps = {cands.rows[redo[j][0]]: redo[j][1][1] for j in again.rows}
    again.rows = [cands.rows[redo[j][0]] for j in again.rows]
    merged = Candidates(
        [*(cands.rows[k] for k in keep), *again.rows],
        [*(cands.texts[k] for k in keep), *again.texts],
        [*(cands.sources[k] for k in keep), *again.sources],
        [*(cands.entities[k] for k in keep), *again.entities],
        {p: [*(m[k] for k in keep), *again.rust.get(p, [])] for p, m in cands.rust.items()},
        cands.ner,
    )
    order = sorted(range(len(merged.rows)), key=merged.rows.__getitem__)
    return merged.take(order), maps


@lru_cache(maxsize=8)
def any_candidate(entities: tuple[str, ...]) -> str:
    """One pattern matching wherever a candidate pattern of ``entities`` or a view trigger matches."""
    parts = [*(p for e in entities for p in CANDIDATE_PARTS[e]), *VIEW_TRIGGERS.values()]
    return "|".join(f"(?:{p})" for p in parts)  # grouped: "(?i)" in one stays in it


def _find(texts: list[str], sources: list[str], cfg: PiiConfig) -> list[list[Finding]]:
    """Findings per text (original offsets), obfuscated and encoded forms included."""
    src = pl.Series("s", sources, dtype=pl.String)
    cands, maps = candidates_of(pl.Series("t", texts, dtype=pl.String), src, src.is_in(cfg.apply_to_sources), cfg, True)
    (results,) = scan_groups([cands], cfg)
    found = findings_of(cands, results, maps)
    return [found.get(i, []) for i in range(len(texts))]


def find_pii(texts: list[str], sources: list[str], cfg: PiiConfig) -> list[list[RecognizerResult]]:
    """What the stage replaces in each of ``texts`` (scored as documents of ``sources``), in original offsets:
    the vectorised candidate pass, the obfuscated and encoded forms, presidio on candidate windows."""
    return [[r for r, _ in found] for found in _find(texts, sources, cfg)]


def _replacement(cfg: PiiConfig, entity: str, original: str, plain: str) -> str:
    # "mask" keeps the shape of what was written; the others read the plain form (hashes agree across forms)
    return cfg.replacement(entity, original if cfg.policy_for(entity) == "mask" else plain)


def apply_findings(text: str, findings: list[RecognizerResult] | list[Finding], cfg: PiiConfig) -> str:
    """``text`` with each (non-overlapping, sorted) finding replaced under ``cfg``'s policy."""
    parts = []
    pos = 0
    for f in findings:
        r, plain = f if isinstance(f, tuple) else (f, text[f.start : f.end])
        parts.append(text[pos : r.start])
        parts.append(_replacement(cfg, r.entity_type, text[r.start : r.end], plain))
        pos = r.end
    parts.append(text[pos:])
    return "".join(parts)
