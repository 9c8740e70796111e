"""An adversarial input corpus for the whole CLI (issue #15), generated in seconds and small on disk.

``make_adversarial_corpus(root)`` writes ``root/corpus`` (the input folder), ``root/outside`` (what
symlinks point out of the input at) and ``root/user_files`` (a user's own folder, hidden files and
output-like subfolders included), and returns a :class:`Corpus`: the cases with what each must give,
the planted personal-data values, and regular expressions for their reformatted forms.

Large inputs stay small on disk: multi-member gzip of a repeated block (a 200 MB JSONL line, 1 GB of
zeros, a 2 GB HTML bomb), a zstd-compressed Parquet page (a 110 MB cell in a few KB) and a sparse file.

A case's ``expect`` is a tuple of conditions on the rows (documents/ and rejected/) whose ``path`` is
the file's display path ``corpus/REL`` or ``corpus/REL#LOC``; each condition is ``[#LOC ]KIND[:ARG]``:

- ``read``: a document, or a reject by a stage after ingest (the record survived ingest);
- ``doc``: a row in documents/;
- ``any``: any row at all;
- ``rejected``: a reject at any stage;
- ``STAGE:REGEX``: a reject at STAGE whose reason matches REGEX (case-insensitive, ``re.search``);
- ``text:S``: a read row (see ``read``) whose text contains S (S holds no personal data);
- ``notread``: no document and no reject after ingest (an ingest reject is fine);
- ``absent:S``: no row of the whole run has S in its path (S is matched against every path).

``#LOC`` restricts a condition to the record at that locator (line number for JSONL, row for Parquet).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import re
import stat
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

ROOT_NAME = "corpus"  # display paths are "corpus/rel/path"


@dataclass(frozen=True)
class Case:
    name: str
    files: tuple[str, ...]  # paths relative to the input folder (os.fsdecode form for undecodable names)
    expect: tuple[str, ...]
    why: str = ""
    needs_unreadable: bool = False  # only meaningful where chmod 000 actually denies reading


@dataclass(frozen=True)
class Plant:
    kind: str  # EMAIL_ADDRESS, PHONE_NUMBER, IP_ADDRESS, CREDIT_CARD, IBAN_CODE, AWS_ACCESS_KEY, URL_CREDENTIALS
    value: str  # canonical value
    written: str  # exactly as it appears in the input (obfuscated, %-encoded, split across a line ...)
    where: str  # case name / place, for messages


@dataclass
class Corpus:
    input_dir: Path
    outside_dir: Path
    user_files: Path
    cases: list[Case]
    plants: list[Plant]
    pii: list[str]  # every literal form of every planted value: none may occur in a finished run folder
    patterns: list[tuple[str, re.Pattern[str]]]  # (label, regex) for reformatted forms (digits regrouped ...)
    outside_marker: str  # text of the file outside the input: never in any output
    notes: list[str] = field(default_factory=list)

    def expected_files(self) -> set[str]:
        return {f for c in self.cases for f in c.files}


# --- text ---------------------------------------------------------------------------------------

_EN = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can out up who said "
    "about what into them some could him time these two may then first any like my now over such our man me "
    "even most made after also did many before must through years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long "
    "get here between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three river garden window kitchen letter morning evening "
    "village harbour market bridge orchard library teacher farmer painter sailor doctor neighbour travellers "
    "walked carried noticed remembered opened finished borrowed repaired planted watched listened wondered "
    "quiet narrow bright heavy gentle careful patient distant sudden familiar ordinary wooden stone winter "
    "summer autumn spring weather storm lantern basket wagon meadow valley hillside forest chapel cottage "
    "supper bread apples honey candles blankets boots ribbons shelves ladders fences gates chimney rooftop"
).split()
_DE = (
    "der die das und ist nicht ein eine mit auf für von dem den zu im sich des auch es an werden aus er hat "
    "dass sie nach bei einer um am sind noch wie einem über so zum wird oder vor zur bis mehr durch man "
    "unser kann wir haben schon wenn jetzt immer wieder Haus Garten Stadt Fluss Brücke Morgen Abend Wetter "
    "Nachbarn schreiben gestern heute morgen Bahnhof Fenster Küche Brief Woche Jahr arbeiten gehen kommen"
).split()


def prose(rng: random.Random, n_words: int = 160, vocab: list[str] | None = None, marker: str = "") -> str:
    """Plain prose of random sentences (passes Gopher-style rules for English); ``marker`` goes in the middle."""
    vocab = vocab or _EN
    sentences: list[str] = []
    total = 0
    while total < n_words:
        k = rng.randint(8, 18)
        words = [rng.choice(vocab) for _ in range(k)]
        sentences.append(" ".join(words).capitalize() + ".")
        total += k
    if marker:
        sentences.insert(len(sentences) // 2, marker)
    paragraphs = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
    return "\n\n".join(paragraphs)


def _jsonl(records: list[object]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def _luhn(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:  # doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def _digits_pattern(value: str) -> re.Pattern[str]:
    """The value's digits/letters in order with any light separators between them (regrouped, split on a line)."""
    chars = [c for c in value if c.isalnum()]
    return re.compile(r"[\s\-.()/]{0,3}".join(re.escape(c) for c in chars), re.I)


# --- binary builders --------------------------------------------------------------------------


def _gzip_repeat(head: bytes, block: bytes, times: int, tail: bytes) -> bytes:
    """gzip members: head, ``block`` compressed once and repeated, tail (a valid multi-member stream)."""
    member = gzip.compress(block, compresslevel=6, mtime=0)
    return gzip.compress(head, mtime=0) + member * times + gzip.compress(tail, mtime=0)


def warc_record(url: str, html: str, declared: int | None = None) -> bytes:
    http = f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}".encode()
    length = len(http) if declared is None else declared
    rid = hashlib.sha1(url.encode()).hexdigest()[:32]
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{rid[:8]}-{rid[8:12]}-{rid[12:16]}-{rid[16:20]}-{rid[20:32]}>\r\n"
        f"Content-Type: application/http; msgtype=response\r\nContent-Length: {length}\r\n\r\n"
    )
    return head.encode() + http + b"\r\n\r\n"


def page(title: str, body: str, head_extra: str = "") -> str:
    paras = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>{head_extra}</head>"
        f"<body><article>{paras}</article></body></html>"
    )


# --- the corpus -------------------------------------------------------------------------------


def make_adversarial_corpus(root: Path, n_tiny: int = 5000) -> Corpus:
    """Write the corpus under ``root`` (see the module docstring); deterministic for a given ``root`` name."""
    rng = random.Random(15)
    inp, outside, user = root / ROOT_NAME, root / "outside", root / "user_files"
    for d in (inp, outside, user):
        d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    plants: list[Plant] = []

    def put(rel: str, data: bytes) -> str:
        p = inp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return rel

    def case(name: str, files: list[str] | tuple[str, ...], *expect: str, why: str = "", **kw: bool) -> None:
        cases.append(Case(name, tuple(files), tuple(expect), why, **kw))

    def plant(kind: str, value: str, where: str, written: str | None = None) -> str:
        plants.append(Plant(kind, value, written or value, where))
        return written or value

    # Planted values: distinctive, each valid for its type (phones checked with libphonenumber below).
    card1, card2, card3 = _luhn("4539", 16, rng), _luhn("5412", 16, rng), _luhn("6011", 16, rng)
    card1_sp = " ".join(card1[i : i + 4] for i in range(0, 16, 4))
    iban_de = _iban("DE", "".join(rng.choice(string.digits) for _ in range(18)))
    iban_gb = _iban("GB", "NWBK" + "".join(rng.choice(string.digits) for _ in range(14)))
    iban_de2 = _iban("DE", "".join(rng.choice(string.digits) for _ in range(18)))
    iban_de2_sp = " ".join(iban_de2[i : i + 4] for i in range(0, len(iban_de2), 4))
    aws1, aws2, aws3 = (
        "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)) for _ in range(3)
    )
    assert all(luhn_ok(c) for c in (card1, card2, card3)) and all(iban_ok(i) for i in (iban_de, iban_de2, iban_gb))
    phones = {
        "p1": ("+1 212-736-4821", "US"),
        "p2": ("312-649-7305", "US"),
        "p3": ("(646) 783-2210", "US"),
        "p4": ("+44 20 7946 0321", "GB"),
        "p5": ("+49 30 90182736", "DE"),
        "p6": ("(415) 829-3761", "US"),
        "p7": ("+1 (617) 495-8327", "US"),
        "p8": ("+33 1 42 68 53 00", "FR"),
    }
    import phonenumbers  # presidio's own dependency: the phones must be valid for a careful tool to flag them

    for number, region in phones.values():
        assert phonenumbers.is_valid_number(phonenumbers.parse(number, region)), number

    # 1. A good English document carrying one of each type in its text: it must be kept, scrubbed.
    text = prose(rng, 220, marker="The harbour notes were kept by the painter.")
    text += (
        f"\n\nWrite to {plant('EMAIL_ADDRESS', 'zqkettleby17@northwind-mail.com', 'kept')} or call "
        f"{plant('PHONE_NUMBER', phones['p1'][0], 'kept')} after supper. The old server answered from "
        f"{plant('IP_ADDRESS', '84.17.53.211', 'kept')} every morning. She paid with card "
        f"{plant('CREDIT_CARD', card1_sp, 'kept')} and sent the rest to IBAN {plant('IBAN_CODE', iban_de, 'kept')}. "
        f"The deploy key was {plant('AWS_ACCESS_KEY', aws1, 'kept')} and the mirror lived at "
        f"{plant('URL_CREDENTIALS', 'https://svc_backup:Tr0ub4dor-x9q@git.bluefin.net/repo.git', 'kept')} for a while."
    )
    put("kept.jsonl", _jsonl([{"text": text, "url": "https://stories.example.com/harbour"}]))
    case("pii_in_text", ["kept.jsonl"], "doc", "text:harbour notes were kept", why="control: a good doc, scrubbed")

    # 2. Personal data outside `text`: JSONL fields (title, author_email, ip, nested meta), url query strings
    # (%40-encoded e-mail, phone), credentials in the url (normalised url drops them, meta.url_raw keeps them).
    e_title = plant("EMAIL_ADDRESS", "yvette.quarrington@bluefin.net", "fields: title")
    e_author = plant("EMAIL_ADDRESS", "mxorlanda.pike@acme-corp.com", "fields: author_email")
    e_query = plant("EMAIL_ADDRESS", "ulrike.vandersloot@web.de", "fields: url query", "ulrike.vandersloot%40web.de")
    p_query = plant("PHONE_NUMBER", phones["p2"][0], "fields: url query")
    ip2 = plant("IP_ADDRESS", "91.203.66.148", "fields: ip")
    cred_url = plant("URL_CREDENTIALS", "https://admin:Hunter2-Qx7w@db.acme-corp.com/export", "fields: url creds")
    e_meta = plant("EMAIL_ADDRESS", "cornelius.waverly@outlook.com", "fields: nested meta")
    p_meta = plant("PHONE_NUMBER", phones["p6"][0], "fields: nested meta")
    card_meta = plant("CREDIT_CARD", card2, "fields: meta card")
    recs = [
        {
            "text": prose(rng, 180),
            "title": f"Letters for {e_title}",
            "author_email": e_author,
            "ip": ip2,
            "url": f"https://shop.example.com/confirm?email={e_query}&phone={p_query}&ok=1",
        },
        {"text": prose(rng, 180), "url": f"{cred_url}?token=1"},
        {
            "text": prose(rng, 180),
            "contact": {"email": e_meta, "phones": [p_meta]},
            "payment": {"card": card_meta},
            "url": "https://shop.example.com/plain",
        },
    ]
    put("fields.jsonl", _jsonl(recs))
    case("pii_in_fields", ["fields.jsonl"], "#1 read", "#2 read", "#3 read", why="title/author_email/ip/url/meta")

    # 3. HTML <title> and canonical url with personal data.
    e_html = plant("EMAIL_ADDRESS", "tobiasfenwright@protonmail.com", "html title")
    e_canon = plant("EMAIL_ADDRESS", "marisol.ekdahl@icloud.com", "html canonical", "marisol.ekdahl%40icloud.com")
    html = page(
        f"Contact {e_html} for the market",
        prose(rng, 200, marker="The lantern market opened at dawn."),
        f"<link rel='canonical' href='https://market.example.org/p?who={e_canon}'>",
    )
    put("title.html", html.encode())
    case("pii_in_html_title", ["title.html"], "doc", "text:lantern market opened")

    # 4. Obfuscated forms: [at]/[dot], "at ... dot", %40, a phone broken across a line.
    ob1 = plant("EMAIL_ADDRESS", "quillon.harte@orange.fr", "obfuscated [at]", "quillon.harte [at] orange [dot] fr")
    ob2 = plant(
        "EMAIL_ADDRESS", "prudence.okonkwo@fairmail.org", "obfuscated at/dot", "prudence.okonkwo at fairmail dot org"
    )
    ob3 = plant("EMAIL_ADDRESS", "hestia.marwood@gmail.com", "obfuscated %40", "hestia.marwood%40gmail.com")
    ob4 = plant("PHONE_NUMBER", phones["p3"][0], "phone across a line", "(646) 783-\n2210")
    text = prose(rng, 200) + (
        f"\n\nYou can write to {ob1} or to {ob2}, and the newsletter goes to {ob3} each week. "
        f"Ring the office on {ob4} before noon."
    )
    put("obfuscated.jsonl", _jsonl([{"text": text}]))
    case("pii_obfuscated", ["obfuscated.jsonl"], "read")

    # 5. Personal data in documents dropped before the pii stage: too short (filter), wrong language (langid),
    # near-duplicates differing only in the planted value (dedup), bad JSON lines (ingest keeps their text).
    short_mail = plant("EMAIL_ADDRESS", "ignatius.brackwell@icloud.com", "too short")
    put("short.jsonl", _jsonl([{"text": f"Mail me at {short_mail} soon."}]))
    case("pii_in_short_doc", ["short.jsonl"], "rejected", why="rejected by langid/filter with raw text")

    de_mail = plant("EMAIL_ADDRESS", "wendelin.schroeer@gmx.de", "german")
    de_phone = plant("PHONE_NUMBER", phones["p5"][0], "german")
    de_iban = plant("IBAN_CODE", iban_de2_sp, "german")
    text = prose(rng, 160, vocab=_DE) + f"\n\nSchreiben Sie an {de_mail} oder rufen Sie {de_phone} an. "
    text += f"Die Miete geht auf das Konto {de_iban} bis Freitag."
    put("german.jsonl", _jsonl([{"text": text}]))
    case("pii_wrong_language", ["german.jsonl"], "langid:.", why="langid rejects it; its text is scrubbed")

    base = prose(rng, 220)
    d1 = plant("EMAIL_ADDRESS", "dup.alpha.kessler@outlook.com", "dedup pair")
    d2 = plant("EMAIL_ADDRESS", "dup.beta.kessler@outlook.com", "dedup pair")
    dp1 = plant("PHONE_NUMBER", phones["p7"][0], "dedup pair")
    dp2 = plant("PHONE_NUMBER", phones["p8"][0], "dedup pair")
    put(
        "dups.jsonl",
        _jsonl(
            [{"text": f"{base}\n\nQuestions to {d1} or {dp1}."}, {"text": f"{base}\n\nQuestions to {d2} or {dp2}."}]
        ),
    )
    case("pii_dedup_pair", ["dups.jsonl"], "doc", "dedup:.", why="the removed copy's text and the report's pairs")

    bad_mail = plant("EMAIL_ADDRESS", "octavia.brennfeld@yahoo.co.uk", "invalid json line")
    bad_card = plant("CREDIT_CARD", card3, "invalid json line")
    nested_mail = plant("EMAIL_ADDRESS", "xavier.lindqvist@northwind.io", "non-string text")
    lines = [
        json.dumps({"text": prose(rng, 120)}).encode(),
        f'{{"text": "card {bad_card} for {bad_mail}", "broken'.encode(),
        json.dumps({"text": {"body": f"write to {nested_mail}"}}).encode(),
    ]
    put("broken_json.jsonl", b"\n".join(lines) + b"\n")
    case("pii_in_ingest_rejects", ["broken_json.jsonl"], "#1 read", "#2 ingest:json", "#3 ingest:non-string")

    # 6. WARC: personal data in the target URI's query and in the page title.
    w_mail = plant(
        "EMAIL_ADDRESS", "rosalind.featherstone@bluefin.net", "warc uri", "rosalind.featherstone%40bluefin.net"
    )
    w_phone = plant("PHONE_NUMBER", phones["p4"][0], "warc title")
    w_aws = plant("AWS_ACCESS_KEY", aws2, "warc body")
    body = prose(rng, 200) + f"\n\nThe build used {w_aws} until it was rotated."
    rec = warc_record(f"https://forum.example.org/thread?id=7&subscriber={w_mail}", page(f"Call {w_phone}", body))
    put("crawl.warc.gz", gzip.compress(rec, mtime=0))
    case("pii_in_warc", ["crawl.warc.gz"], "read")

    # 7. Parquet with personal data in several columns.
    pq_mail = plant("EMAIL_ADDRESS", "barnaby.quist@acme-corp.com", "parquet author")
    pq_ip = plant("IP_ADDRESS", "145.239.12.77", "parquet ip")
    pq_iban = plant("IBAN_CODE", iban_gb, "parquet iban")
    tbl = pa.table(
        {
            "text": [prose(rng, 160), prose(rng, 160)],
            "author": [pq_mail, "anonymous"],
            "client_ip": [pq_ip, None],
            "iban": [pq_iban, None],
        }
    )
    pq.write_table(tbl, inp / "columns.parquet")
    case("pii_in_parquet_columns", ["columns.parquet"], "#0 read", "#1 read")

    # 8. Code with secrets (kept or dropped by code rules: either way scrubbed or gone).
    c_aws = plant("AWS_ACCESS_KEY", aws3, "code")
    c_ip = plant("IP_ADDRESS", "62.141.38.205", "code")
    c_url = plant("URL_CREDENTIALS", "postgres://deploy:Wq8-pLm3zRt@prod-db.northwind.io/app", "code")
    code = (
        '"""Deploy helper."""\n\nimport os\n\n'
        f'AWS_ACCESS_KEY_ID = "{c_aws}"\nDB_HOST = "{c_ip}"\nDATABASE_URL = "{c_url}"\n\n\n'
        "def main() -> None:\n    for name in sorted(os.environ):\n        print(name)\n\n\n"
        'if __name__ == "__main__":\n    main()\n'
    )
    put("tools/deploy.py", code.encode())
    case("pii_in_code", ["tools/deploy.py"], "any")

    # 9. The 200 MB single-line record (gzip, ~200 KB on disk) starting with personal data, then a good line.
    huge_mail = plant("EMAIL_ADDRESS", "leopold.huxtable@gmail.com", "oversized record head")
    block = (" ".join(rng.choice(_EN) for _ in range(3000)) + " ").encode()
    block = block * ((16 << 20) // len(block))
    head = f'{{"text": "Contact {huge_mail} about this. '.encode()
    tail = b'"}\n' + json.dumps({"text": prose(rng, 150)}).encode() + b"\n"
    put("huge_line.jsonl.gz", _gzip_repeat(head, block, 13, tail))
    case(
        "oversized_jsonl_record",
        ["huge_line.jsonl.gz"],
        r"#1 ingest:\d+(\.\d+)? ?(MB|MiB|GB|bytes)",
        "#2 read",
        why="200 MB line: rejected with its size, the next line still read, bounded memory",
    )

    # 10. 1 GB of zeros in a .jsonl.gz (~1 MB on disk): one endless "line" of NULs.
    put("zeros.jsonl.gz", _gzip_repeat(b"", bytes(64 << 20), 16, b""))
    case("gzip_of_zeros", ["zeros.jsonl.gz"], "ingest:.", why="1 GB decompressed, no newline")

    # 11. An ~11 KB Parquet file holding a 110 MB cell (zstd: long runs compress to almost nothing).
    big = pa.array(["x" * (110 << 20), prose(rng, 150)], type=pa.large_string())
    pq.write_table(
        pa.table({"text": big}), inp / "big_cell.parquet", compression="zstd", use_dictionary=False,
        write_statistics=False, row_group_size=2,
    )  # fmt: skip
    del big
    case("parquet_110mb_cell", ["big_cell.parquet"], r"#0 ingest:\d+(\.\d+)? ?(MB|MiB|GB|bytes)", "#1 read")

    # 12. Unreadable (no read permission) file and directory; effective only without CAP_DAC_OVERRIDE.
    locked = inp / "locked.jsonl"
    locked.write_bytes(_jsonl([{"text": prose(rng, 120)}]))
    locked.chmod(0)
    case("unreadable_file", ["locked.jsonl"], "ingest:permission|unreadable|denied", needs_unreadable=True)
    (inp / "locked_dir").mkdir()
    (inp / "locked_dir" / "inside.jsonl").write_bytes(_jsonl([{"text": prose(rng, 120)}]))
    (inp / "locked_dir").chmod(0)
    case(
        "unreadable_dir",
        ["locked_dir"],
        "ingest:permission|unreadable|denied",
        why="a folder that cannot be listed is a reject, not silence",
        needs_unreadable=True,
    )

    # 13. A non-UTF-8 file name (latin-1 "café").
    bad_name = os.fsencode(inp) + b"/nonutf8-caf\xe9.txt"
    with open(bad_name, "wb") as fh:
        fh.write(prose(rng, 150).encode())
    case("non_utf8_name", [os.fsdecode(b"nonutf8-caf\xe9.txt")], "any", why="must not abort the run")

    # 14. Symlinks: to a file outside the input, to a folder outside, a loop, dangling, and to a file inside.
    outside_marker = "Zyxomelt outside text never ingested"
    (outside / "secret.txt").write_text(prose(rng, 150, marker=outside_marker + "."))
    (outside / "more").mkdir(exist_ok=True)
    (outside / "more" / "other.jsonl").write_bytes(_jsonl([{"text": prose(rng, 100, marker=outside_marker + ".")}]))
    os.symlink("../outside/secret.txt", inp / "outside_link.txt")
    case("symlink_out_of_root", ["outside_link.txt"], "ingest:symlink|outside|link", "notread")
    os.symlink("../outside/more", inp / "outside_dir_link")
    case("symlink_dir_out_of_root", ["outside_dir_link"], "absent:outside_dir_link/")
    os.symlink(".", inp / "loop")
    case("symlink_loop", ["loop"], "absent:/loop/", why="each real file read once")
    os.symlink("no-such-file.jsonl", inp / "dangling.jsonl")
    case("dangling_symlink", ["dangling.jsonl"], "ingest:.")
    os.symlink("kept.jsonl", inp / "inner_link.jsonl")
    case("symlink_inside_root", ["inner_link.jsonl"], "notread", why="kept.jsonl must not be read twice")

    # 15. A FIFO named like data: opening it blocks forever unless the reader checks the file type first.
    os.mkfifo(inp / "pipe.jsonl")
    case("fifo", ["pipe.jsonl"], "ingest:fifo|pipe|not a regular|special|device", "notread")

    # 16. Deeply nested HTML (400 levels) and a 20 MB <script> (gzip): the paragraph must survive.
    para = "The orchard ladder leaned against the chapel wall all winter."
    body = prose(rng, 150, marker=para)
    nested = (
        "<html><head><title>Nested</title></head><body>"
        + "<div>" * 400
        + "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
        + "</div>" * 400
        + "</body></html>"
    )
    put("nested400.html", nested.encode())
    case("html_nested_400", ["nested400.html"], "text:orchard ladder leaned")
    para2 = "The wooden wagon carried candles to the harbour market."
    script = "<script>var blob = '" + "a1b2c3d4" * ((20 << 20) // 8) + "';</script>"
    html = page("Script", prose(rng, 150, marker=para2), head_extra=script)
    put("script20mb.html.gz", gzip.compress(html.encode(), compresslevel=6, mtime=0))
    case("html_20mb_script", ["script20mb.html.gz"], "text:wooden wagon carried candles")
    para3 = "The patient farmer repaired the fences before the storm."
    attr = "<div data-blob='" + "q" * (1 << 20) + "'></div>"
    html = page("Attr", prose(rng, 150, marker=para3)).replace("<article>", "<article>" + attr)
    put("fat_attr.html", html.encode())
    case("html_1mb_attribute", ["fat_attr.html"], "text:patient farmer repaired the fences")

    # 17. Compression edge cases.
    m1 = gzip.compress(_jsonl([{"text": prose(rng, 120)} for _ in range(3)]), mtime=0)
    m2 = gzip.compress(_jsonl([{"text": prose(rng, 120)} for _ in range(3)]), mtime=0)
    put("members_garbage.jsonl.gz", m1 + m2 + b"TRAILING GARBAGE \x00\x01\x02 not gzip")
    case(
        "gzip_members_trailing_garbage",
        ["members_garbage.jsonl.gz"],
        "#1 read",
        "#6 read",
        "ingest:.",
        why="both members read; the garbage is a reject",
    )
    z = zstandard.ZstdCompressor()
    f1 = z.compress(_jsonl([{"text": prose(rng, 120)} for _ in range(3)]))
    f2 = z.compress(_jsonl([{"text": prose(rng, 120)} for _ in range(3)]))
    put("frames_truncated.jsonl.zst", f1 + f2[: len(f2) // 2])
    case("zstd_second_frame_truncated", ["frames_truncated.jsonl.zst"], "#1 read", "#3 read", "ingest:trunc")
    put("bomb.html.gz", _gzip_repeat(b"<html><body><p>", b"aaaaaaaa" * (8 << 20), 32, b"</p></body></html>"))
    case("gzip_bomb_2gb_html", ["bomb.html.gz"], r"ingest:\d+(\.\d+)? ?(MB|MiB|GB|bytes)", why="2 GB decompressed")
    put("not_gzip.jsonl.gz", _jsonl([{"text": prose(rng, 80)}]))
    case("plain_text_named_gz", ["not_gzip.jsonl.gz"], "ingest:.")

    # 18. WARC whose second record's Content-Length is far larger than the record (per-record gzip).
    r1 = warc_record("https://a.example.org/1", page("One", prose(rng, 150)))
    r2 = warc_record("https://a.example.org/2", page("Two", prose(rng, 150)), declared=10**7)
    r3 = warc_record("https://a.example.org/3", page("Three", prose(rng, 150)))
    put("lying_length.warc.gz", b"".join(gzip.compress(r, mtime=0) for r in (r1, r2, r3)))
    case("warc_lying_content_length", ["lying_length.warc.gz"], "read", "ingest:.")

    # 19. Encodings.
    para4 = "The quiet teacher borrowed a basket of apples."
    put("utf16_bom.txt", prose(rng, 200, marker=para4).encode("utf-16"))
    case("utf16_with_bom", ["utf16_bom.txt"], "read", "text:quiet teacher borrowed", why="BOM says UTF-16")
    mixed = (
        prose(rng, 120).encode()
        + "\n\nCafé crème, naïve façade.\n\n".encode()
        + ("Her résumé said \u201ccareful\u201d twice.\n\n" + prose(rng, 120)).encode("cp1252")
    )
    put("mixed_encoding.txt", mixed)
    case("mixed_utf8_cp1252", ["mixed_encoding.txt"], "read", "text:résumé")
    put("bom.jsonl", b"\xef\xbb\xbf" + _jsonl([{"text": prose(rng, 120)}, {"text": prose(rng, 120)}]))
    case("utf8_bom_jsonl", ["bom.jsonl"], "#1 read", "#2 read")
    put("crlf.jsonl", _jsonl([{"text": prose(rng, 120)}, {"text": prose(rng, 120)}]).replace(b"\n", b"\r\n"))
    case("crlf_jsonl", ["crlf.jsonl"], "#1 read", "#2 read")
    t = prose(rng, 120)
    put("unicode_separators.jsonl", _jsonl([{"text": t[:200] + "\u2028" + t[200:] + "\u0085end"}]))
    case("u2028_inside_jsonl_string", ["unicode_separators.jsonl"], "#1 read")

    # 20. JSON shapes.
    good_after = json.dumps({"text": prose(rng, 120)})
    put("text_types.jsonl", "\n".join([
        json.dumps({"text": 42}), json.dumps({"text": None}), json.dumps({"text": {"nested": "object"}}),
        json.dumps({"text": ["a", "list"]}), good_after,
    ]).encode() + b"\n")  # fmt: skip
    case("jsonl_text_wrong_types", ["text_types.jsonl"], "#1 ingest:.", "#2 ingest:.", "#3 ingest:.", "#4 ingest:.",
         "#5 read")  # fmt: skip
    deep = '{"text": "deep", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}"
    put("deep_json.jsonl", (deep + "\n" + json.dumps({"text": prose(rng, 120)}) + "\n").encode())
    case("jsonl_deep_nesting", ["deep_json.jsonl"], "#1 ingest:.", "#2 read", why="RecursionError on one line only")
    put("hash#name.jsonl", _jsonl([{"text": prose(rng, 120)}]))
    case("hash_in_file_name", ["hash#name.jsonl"], "#1 read")
    put("new\nline.txt", prose(rng, 150).encode())
    case("newline_in_file_name", ["new\nline.txt"], "read")
    tbl = pa.table({"text": pa.array([prose(rng, 120), None, prose(rng, 120)]).dictionary_encode(), "n": [1, 2, 3]})
    pq.write_table(tbl, inp / "dict_nulls.parquet")
    case("parquet_dictionary_and_null_text", ["dict_nulls.parquet"], "#0 read", "#1 ingest:.", "#2 read")

    # 21. Empty and whitespace-only files, a sparse 2 GB .txt, a zip archive.
    for rel in ("empty.jsonl", "empty.txt", "empty.html", "empty.parquet"):
        put(rel, b"")
    case("empty_files", ["empty.jsonl", "empty.txt", "empty.html", "empty.parquet"], "ingest:empty")
    put("blank.txt", b"   \n\t\n   \n")
    put("blank.jsonl", b"\n   \n\t\n")
    put("blank.html", b"  \n  ")
    case("whitespace_only_files", ["blank.txt", "blank.jsonl", "blank.html"], "ingest:.")
    with open(inp / "sparse_2gb.txt", "wb") as fh:
        os.truncate(fh.fileno(), 2 << 30)
    case("sparse_2gb_txt", ["sparse_2gb.txt"], r"ingest:\d+(\.\d+)? ?(MB|MiB|GB|bytes)")
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner.jsonl", _jsonl([{"text": prose(rng, 80)}]).decode())
    put("archive.zip", buf.getvalue())
    case("zip_archive", ["archive.zip"], "ingest:unsupported|archive")

    # 22. Many tiny files.
    tiny = [put(f"many/{i // 500:02d}/note{i:05d}.txt", f"tiny note {i} about the {rng.choice(_EN)}".encode())
            for i in range(n_tiny)]  # fmt: skip
    case("five_thousand_tiny_files", tiny, "any")

    # Hidden entries in the input: never ingested, never touched (an --out inside the input once deleted them).
    put(".env", b"SECRET_TOKEN=not-for-ingest\n")
    put(".cache.tmp", b"user temp\n")
    put("tools/.helper.old", b"old helper\n")
    put(".hidden_dir/data.jsonl", _jsonl([{"text": "hidden"}]))
    case("hidden_entries_skipped", [], "absent:/.env", "absent:.cache.tmp", "absent:.helper.old", "absent:.hidden_dir")

    make_user_files(user)

    # Literal forms to search for: canonical and as written, plus the distinctive local part of each e-mail.
    needles: list[str] = []
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for p in plants:
        forms = {p.value, p.written}
        if p.kind == "EMAIL_ADDRESS":
            forms.add(p.value.split("@")[0])
        if p.kind == "URL_CREDENTIALS":
            userinfo = p.value.split("://", 1)[1].split("@", 1)[0]
            forms |= {userinfo, userinfo.split(":", 1)[1]}
        needles.extend(sorted(f for f in forms if f not in needles))
        if p.kind in ("PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE"):
            # National number for phones: a country code may be dropped or written differently.
            v = p.value
            if p.kind == "PHONE_NUMBER":
                v = str(phonenumbers.parse(p.value, "US").national_number)
            patterns.append((f"{p.kind} {p.value} (regrouped)", _digits_pattern(v)))
    return Corpus(inp, outside, user, cases, plants, needles, patterns, outside_marker)


def make_user_files(user: Path) -> Path:
    """A user's own folder: hidden files and output-like subfolders (documents/, tokenizer/, cache/ ...) with
    files of theirs inside; no Refinery marker, so it is never a valid ``--out`` and must never be touched."""
    user.mkdir(parents=True, exist_ok=True)
    for rel, data in {
        ".env": b"API_KEY=mine\n",
        ".x.tmp": b"mine\n",
        ".y.old": b"mine\n",
        "notes.txt": b"my notes\n",
        "manifest.json": b'{"mine": true}\n',
        "documents/part-00000.parquet": b"not really parquet, mine\n",
        "documents/.draft.tmp": b"mine\n",
        "rejected/keep.txt": b"mine\n",
        "rejected/.z.old": b"mine\n",
        "tokenizer/tokenizer.model": b"mine\n",
        "tokenizer/.a.tmp": b"mine\n",
        "model/weights.bin": b"mine\n",
        "dedup_index/index.bin": b"mine\n",
        "cache/blob": b"mine\n",
        "cache/.c.tmp": b"mine\n",
        "shards/train-00000-000.parquet": b"mine\n",
        "report/report.md": b"# mine\n",
        "deep/er/.d.old": b"mine\n",
        ".refinery-tmp-notes.txt.x1.tmp": b"mine, named like a Refinery temporary\n",
    }.items():
        p = user / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (user / ".old_run.old").mkdir()
    (user / ".old_run.old" / "f").write_bytes(b"mine\n")
    (user / "documents" / ".stage.tmp").mkdir()
    return user


# --- helpers for the test -----------------------------------------------------------------------


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry below ``root`` (hidden ones too, symlinks not followed) -> (kind, mode, content digest).

    FIFOs are never opened; sparse files are hashed by reading (holes read as zeros, quickly).
    """
    import xxhash

    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(p, os.fsencode(root)))
            st = os.lstat(p)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", mode, os.fsdecode(os.readlink(p)))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, None)
            elif stat.S_ISREG(st.st_mode):
                h = xxhash.xxh3_128()
                with open(p, "rb") as fh:
                    while chunk := fh.read(8 << 20):
                        h.update(chunk)
                out[rel] = ("file", mode, st.st_size, h.hexdigest())
            else:
                out[rel] = ("special", mode, stat.S_IFMT(st.st_mode))
    return out


def diff_states(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Human-readable differences: removed, changed and added entries."""
    out = [f"removed: {k!r}" for k in sorted(before.keys() - after.keys())]
    out += [f"changed: {k!r}" for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    out += [f"added: {k!r}" for k in sorted(after.keys() - before.keys())]
    return out


@dataclass(frozen=True)
class Finding:
    file: str
    column: str | None  # None: raw bytes of the file
    what: str

    def __str__(self) -> str:
        return f"{self.file} [{self.column or 'bytes'}]: {self.what}"


def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                yield p


def _search_text(text: str, needles: list[str], patterns: list[tuple[str, re.Pattern[str]]]) -> list[str]:
    low = text.lower()
    hits = [n for n in needles if n.lower() in low]
    hits += [label for label, rx in patterns if rx.search(text)]
    return hits


def scan_run_folder(
    out: Path, needles: list[str], patterns: list[tuple[str, re.Pattern[str]]], max_regex_mb: int = 64
) -> list[Finding]:
    """Every planted value found in ``out``: every column of every Parquet file (read as text, nested values
    as JSON) and the raw bytes of every file (Parquet included; nothing decompressed)."""
    findings: list[Finding] = []
    low_needles = [n.lower().encode() for n in needles]
    byte_patterns = [(label, re.compile(rx.pattern.encode(), rx.flags & ~re.U)) for label, rx in patterns]
    for p in _walk_files(out):
        rel = p.relative_to(out).as_posix()
        data = p.read_bytes()
        low = data.lower()
        for n, ln in zip(needles, low_needles, strict=True):
            if ln in low:
                findings.append(Finding(rel, None, n))
        if len(data) <= max_regex_mb << 20:
            findings += [Finding(rel, None, label) for label, rx in byte_patterns if rx.search(data)]
        del data, low
        if p.suffix == ".parquet":
            try:
                pf = pq.ParquetFile(p)
            except Exception as e:  # noqa: BLE001 - a file that is not Parquet is still scanned as bytes
                findings.append(Finding(rel, None, f"unreadable parquet: {e}"))
                continue
            for batch in pf.iter_batches(batch_size=2048):
                for name in batch.schema.names:
                    values = batch.column(name).to_pylist()
                    cells = [v if isinstance(v, str) else json.dumps(v, default=str) for v in values if v is not None]
                    joined = "\n\u0000\n".join(cells)
                    findings += [Finding(rel, name, h) for h in _search_text(joined, needles, patterns)]
    return sorted(set(findings), key=str)
