"""The run report's pages: report.md and a self-contained index.html from the same sections."""

from __future__ import annotations

from pathlib import Path

from pipeline.report import write_pages


def test_html_title_has_no_markdown_marks(tmp_path: Path) -> None:
    write_pages(tmp_path, "Refinery run report: recipe `default`", "intro", [])
    page = (tmp_path / "index.html").read_text()
    assert "<title>Refinery run report: recipe default</title>" in page and "`" not in page
    assert "recipe `default`" in (tmp_path / "report.md").read_text()
