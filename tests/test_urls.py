"""URL normalisation, registered domains (offline) and the blocklist rule."""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.filters.blocklist import BlocklistConfig, blocklist_reason
from pipeline.urls import normalize_url, registered_domain


@pytest.mark.parametrize(
    ("raw", "norm", "domain"),
    [
        ("HTTPS://News.BBC.co.uk:443/a/./b/../c?utm_source=x&id=2#top", "https://news.bbc.co.uk/a/c?id=2", "bbc.co.uk"),
        ("example.com", "http://example.com/", "example.com"),
        ("http://Example.com:8080", "http://example.com:8080/", "example.com"),
        ("https://an.wikipedia.org/wiki/Escopete", "https://an.wikipedia.org/wiki/Escopete", "wikipedia.org"),
        ("http://bücher.ch/ä", "http://xn--bcher-kva.ch/%C3%A4", "xn--bcher-kva.ch"),
        ("http://192.168.0.1/x", "http://192.168.0.1/x", "192.168.0.1"),
        ("https://foo.github.io/p", "https://foo.github.io/p", "foo.github.io"),  # private suffix
        # reserved names (RFC 2606/6761) are in no suffix rule: the list's default rule "*" applies
        ("http://www.a.example/x", "http://www.a.example/x", "a.example"),
        ("http://b.example/", "http://b.example/", "b.example"),
        ("http://svc.test/", "http://svc.test/", "svc.test"),
        ("http://app.localhost:3000/", "http://app.localhost:3000/", "app.localhost"),
        ("http://intranet/", "http://intranet/", "intranet"),
        ("file:///notes.txt", "file:///notes.txt", None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_normalize_and_domain(raw, norm, domain):
    assert normalize_url(raw) == norm
    assert registered_domain(norm or raw) == domain


def test_blocklist_domains_patterns_and_files(tmp_path):
    df = pl.DataFrame(
        {
            "url": ["http://www.bad.com/x", "https://good.org/casino/1", "http://notbad.com/", "http://a.b.bad.com/",
                    None, "https://good.org/ok"],
        }
    )  # fmt: skip
    cfg = BlocklistConfig(domains=["bad.com"], patterns=[r"/casino/"])
    got = df.select(blocklist_reason(df, cfg).alias("r"))["r"].to_list()
    assert got == ["blocklist:domain", "blocklist:pattern", None, "blocklist:domain", None, None]
    (tmp_path / "d.txt").write_text("# blocked\nbad.com\n\n*.evil.net  # wildcard form\n")
    (tmp_path / "p.txt").write_text(r"/casino/" + "\n")
    cfg = BlocklistConfig(domains_file=str(tmp_path / "d.txt"), patterns_file=str(tmp_path / "p.txt"))
    df2 = pl.DataFrame({"url": ["http://x.evil.net/", "https://good.org/casino/", "http://bad.com"]})
    assert df2.select(blocklist_reason(df2, cfg))["literal"].to_list() == [
        "blocklist:domain", "blocklist:pattern", "blocklist:domain"]  # fmt: skip
    assert df.with_columns(blocklist_reason(df, BlocklistConfig()).alias("r"))["r"].null_count() == len(df)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError
        BlocklistConfig(domain=["x"])
