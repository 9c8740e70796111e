"""The run report's pages: report.md and a self-contained index.html from the same sections."""

from __future__ import annotations

from pathlib import Path

from pipeline.report import write_pages


def test_html_title_has_no_markdown_marks(tmp_path: Path) -> None:
    write_pages(tmp_path, "Refinery run report: recipe `default`", "intro", [])
    page = (tmp_path / "index.html").read_text()
    assert "<title>Refinery run report: recipe default</title>" in page and "`" not in page
    assert "recipe `default`" in (tmp_path / "report.md").read_text()


def test_dedup_section_says_removals_in_words_not_a_json_dict(tmp_path: Path) -> None:
    from pipeline.report import ReportConfig, _dedup_section

    stats = {"clusters": 13, "removed_by_reason": {"near_duplicate": 6, "exact_duplicate": 1200}}
    manifest = {"stages": [{"name": "dedup", "stats": stats}]}
    section = _dedup_section(manifest, None, tmp_path, ReportConfig(), lambda text, source: text)
    prose = "\n".join(section.md)
    assert "13 clusters; documents removed: 1,200 exact duplicate, 6 near duplicate." in prose
    assert "{" not in prose
