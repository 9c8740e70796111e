"""A planted-PII generator: realistic, valid PII and secrets inserted into real text, with their offsets.

Used by ``benchmarks/pii.py`` (recall and precision per entity type) and by the tests (no planted value may
survive a run). Values are random but valid for their type: phone numbers pass libphonenumber's validity
check for their region, card numbers the Luhn check, IBANs the mod-97 check, SSNs the SSA's rules, JWTs
decode to JSON. Everything is drawn from one ``random.Random(seed)``, so a seed gives the same corpus.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from urllib.parse import quote, unquote

import phonenumbers

FIRST = "anna ben chloe david elena farid grace hiro ines jonas kemi lukas maria nikhil olga pedro".split()
LAST = "smith okafor muller garcia tanaka dubois kowalski patel jensen rossi nguyen ivanova haddad silva".split()
MAIL_DOMAINS = (
    "gmail.com outlook.com yahoo.co.uk web.de orange.fr protonmail.com icloud.com acme-corp.com northwind.io "
    "cs.uni-heidelberg.de mail.stanford.edu bluefin.net"
).split()
HOSTS = [
    "db.internal.acme-corp.com",
    "prod-db-3.northwind.io",
    "ftp.bluefin.net",
    "cache.example.org",
    "git.bluefin.net",
]

# Templates: {v} is the value; prose sentences and code lines, as they appear in forums, READMEs, configs.
TEMPLATES: dict[str, list[str]] = {
    "EMAIL_ADDRESS": [
        "Send your questions to {v} before the end of the month.",
        "Contact: {v}",
        "# Maintainer: {v}",
        'AUTHOR_EMAIL = "{v}"',
        "Reply-To: <{v}>",
        "email me ({v}) if it breaks",
    ],
    "PHONE_NUMBER": [
        "Call us on {v} for bookings.",
        "Tel: {v}",
        "Phone {v} (office hours only)",
        "You can reach her at {v} most evenings.",
        "Mobile: {v}",
        '"phone": "{v}",',
    ],
    "IP_ADDRESS": [
        "The request came from {v} just after midnight.",
        "host = {v}",
        "ssh admin@{v}",
        "Blocked {v} after repeated failed logins.",
        'SERVER_ADDR = "{v}"',
    ],
    "CREDIT_CARD": [
        "I paid with card number {v} and never got the parcel.",
        "card: {v}",
        "Please charge {v}, expiry 09/27.",
        '"card_number": "{v}",',
    ],
    "IBAN_CODE": [
        "Please transfer the deposit to IBAN {v} by Friday.",
        "IBAN: {v}",
        "Bank account {v} (Sparkasse)",
        'iban = "{v}"',
    ],
    "US_SSN": [
        "My social security number is {v}, please keep it private.",
        "SSN: {v}",
        "ssn {v} on file",
        '"ssn": "{v}",',
    ],
    "URL_CREDENTIALS": [
        "DATABASE_URL={v}",
        'engine = create_engine("{v}")',
        "clone from {v} if the mirror is down",
        "proxy: {v}",
    ],
    "AWS_ACCESS_KEY": [
        "aws_access_key_id = {v}",
        'AWS_KEY = "{v}"',
        "export AWS_ACCESS_KEY_ID={v}",
        "the leaked key {v} was revoked",
    ],
    "GITHUB_TOKEN": [
        'GITHUB_TOKEN = "{v}"',
        "export GH_TOKEN={v}",
        "git remote set-url origin with token {v}",
        "Authorization: token {v}",
    ],
    "GITLAB_TOKEN": ['private_token = "{v}"', "CI_TOKEN={v}", "use the access token {v} for the registry"],
    "SLACK_TOKEN": ['SLACK_BOT_TOKEN = "{v}"', "slack token: {v}", "post to {v} when the build fails"],
    "PRIVATE_KEY": ["{v}", 'KEY = """{v}"""', "deploy key:\n{v}\n"],
    "JWT": ["Authorization: Bearer {v}", 'token = "{v}"', "the session cookie was {v} until logout"],
    "PASSWORD": ['password = "{v}"', "DB_PASSWORD={v}", '"password": "{v}",', "passwd: {v}", "login with pwd={v}"],
}
ENTITIES = tuple(TEMPLATES)


@dataclass(frozen=True)
class Plant:
    entity: str
    start: int
    end: int
    value: str


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:  # these digits are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}",
                        f"{first}+news", f"{last}.{first}"])  # fmt: skip
    return f"{local}@{rng.choice(MAIL_DOMAINS)}"


_PHONE_SHAPES = {  # region -> national-number generators (digits), tried until libphonenumber calls it valid
    "US": lambda r: f"{r.randint(201, 989)}{r.randint(200, 999)}{r.randint(0, 9999):04d}",
    "GB": lambda r: r.choice(["20", "7700", "161", "131"]) + "".join(r.choice(string.digits) for _ in range(7)),
    "DE": lambda r: r.choice(["30", "89", "151", "176", "40"]) + "".join(r.choice(string.digits) for _ in range(8)),
    "FR": lambda r: r.choice("1234567") + "".join(r.choice(string.digits) for _ in range(8)),
    "IN": lambda r: r.choice("6789") + "".join(r.choice(string.digits) for _ in range(9)),
}


def phone(rng: random.Random) -> str:
    region = rng.choice(list(_PHONE_SHAPES))
    while True:
        num = phonenumbers.parse(_PHONE_SHAPES[region](rng), region)
        if phonenumbers.is_valid_number(num):
            break
    style = rng.random()
    if style < 0.4:
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if style < 0.8:
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    if region == "US":  # the other common US spellings
        n = str(num.national_number)
        return rng.choice([f"{n[:3]}-{n[3:6]}-{n[6:]}", f"{n[:3]}.{n[3:6]}.{n[6:]}", f"+1-{n[:3]}-{n[3:6]}-{n[6:]}"])
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def ip(rng: random.Random) -> str:
    if rng.random() < 0.3:
        groups = [f"{rng.randint(0x2001, 0x2A0F):x}"] + [f"{rng.randint(0, 0xFFFF):x}" for _ in range(7)]
        if rng.random() < 0.5:  # compressed form: a zero run written as "::"
            return ":".join(groups[:3]) + "::" + ":".join(groups[6:])
        return ":".join(groups)
    while True:
        a = rng.randint(1, 223)
        if a not in (10, 100, 127, 169, 172, 192):  # keep clear of private / special ranges
            return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "mc", "amex", "discover"])
    if kind == "amex":
        n = _luhn_complete(rng.choice(["34", "37"]), 15, rng)
        groups = [n[:4], n[4:10], n[10:]]
    else:
        prefix = {"visa": "4", "mc": str(rng.randint(51, 55)), "discover": "6011"}[kind]
        n = _luhn_complete(prefix, 16, rng)
        groups = [n[i : i + 4] for i in range(0, 16, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


_IBAN_BBAN = {  # country -> BBAN generator
    "DE": lambda r: "".join(r.choice(string.digits) for _ in range(18)),
    "GB": lambda r: (
        "".join(r.choice(string.ascii_uppercase) for _ in range(4))
        + "".join(r.choice(string.digits) for _ in range(14))
    ),
    "FR": lambda r: (
        "".join(r.choice(string.digits) for _ in range(10))
        + "".join(r.choice(string.digits + string.ascii_uppercase) for _ in range(11))
        + "".join(r.choice(string.digits) for _ in range(2))
    ),
    "NL": lambda r: (
        "".join(r.choice(string.ascii_uppercase) for _ in range(4))
        + "".join(r.choice(string.digits) for _ in range(10))
    ),
    "ES": lambda r: "".join(r.choice(string.digits) for _ in range(20)),
}


def iban(rng: random.Random) -> str:
    country = rng.choice(list(_IBAN_BBAN))
    bban = _IBAN_BBAN[country](rng)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    code = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4)) if rng.random() < 0.5 else code


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def password(rng: random.Random) -> str:
    return _token(rng, rng.randint(4, 8)) + rng.choice("!#*-_+.?^~") + _token(rng, rng.randint(3, 8))


def url_credentials(rng: random.Random) -> tuple[str, str]:
    user = rng.choice([rng.choice(FIRST), "admin", "deploy", "svc_backup"])
    secret = password(rng)
    scheme = rng.choice(["https", "postgres", "mysql", "redis", "ftp", "mongodb+srv"])
    return f"{scheme}://{user}:{secret}@{rng.choice(HOSTS)}/{rng.choice(['app', 'data', 'repo.git', ''])}", (
        f"{user}:{secret}"
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    header = {"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}
    payload = {"sub": str(rng.randint(10**6, 10**9)), "name": rng.choice(FIRST).title(), "iat": 1700000000}
    sig = _token(rng, 43, string.ascii_letters + string.digits + "-_")
    return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}.{sig}"


def private_key(rng: random.Random) -> str:
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
    lines = [_token(rng, 64, string.ascii_letters + string.digits + "+/") for _ in range(rng.randint(4, 12))]
    return f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {kind}PRIVATE KEY-----"


def value(entity: str, rng: random.Random) -> tuple[str, str]:
    """(text to put in the template, the sensitive part of it that must not survive)."""
    if entity == "URL_CREDENTIALS":
        return url_credentials(rng)
    v = {
        "EMAIL_ADDRESS": email,
        "PHONE_NUMBER": phone,
        "IP_ADDRESS": ip,
        "CREDIT_CARD": card,
        "IBAN_CODE": iban,
        "US_SSN": ssn,
        "AWS_ACCESS_KEY": lambda r: r.choice(["AKIA", "ASIA"]) + _token(r, 16, string.ascii_uppercase + string.digits),
        "GITHUB_TOKEN": lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _token(r, 36),
        "GITLAB_TOKEN": lambda r: "glpat-" + _token(r, 20, string.ascii_letters + string.digits + "_-"),
        "SLACK_TOKEN": lambda r: f"xoxb-{r.randint(10**10, 10**12)}-{r.randint(10**10, 10**12)}-{_token(r, 24)}",
        "PRIVATE_KEY": private_key,
        "JWT": jwt,
        "PASSWORD": password,
    }[entity](rng)
    return v, v


def plant(text: str, entities: list[str], rng: random.Random) -> tuple[str, list[Plant]]:
    """``text`` with one templated value of each of ``entities`` inserted at random line breaks (or spaces)."""
    plants: list[Plant] = []
    for entity in entities:
        shown, secret = value(entity, rng)
        snippet = rng.choice(TEMPLATES[entity]).replace("{v}", shown)
        pos = rng.randint(0, len(text))
        nl = text.find("\n", pos)
        pos = nl if nl != -1 else len(text)
        insert = "\n" + snippet + "\n"
        text = text[:pos] + insert + text[pos:]
        shift = len(insert)
        plants = [Plant(p.entity, p.start + shift, p.end + shift, p.value) if p.start >= pos else p for p in plants]
        at = pos + 1 + snippet.index(secret)
        plants.append(Plant(entity, at, at + len(secret), secret))
    return text, sorted(plants, key=lambda p: p.start)


def planted_corpus(
    base: list[str], seed: int = 0, per_doc: int = 2, entities: tuple[str, ...] = ENTITIES
) -> list[tuple[str, list[Plant]]]:
    """Each base text with ``per_doc`` planted values; the types cycle so every type gets an equal share."""
    rng = random.Random(seed)
    out = []
    k = 0
    for text in base:
        chosen = [entities[(k + j) % len(entities)] for j in range(per_doc)]
        k += per_doc
        out.append(plant(text, chosen, rng))
    return out


# ------------------------------------------------------------------- records with PII outside the text
#
# For end-to-end checks that no personal data is left anywhere in a run folder: JSONL records whose PII sits
# in the URL (query string, percent-encoded, credentials), in fields that ingest keeps in ``meta`` (title,
# author_email, ip) and in the text in obfuscated forms.


def _us_phone(rng: random.Random) -> tuple[str, str, str]:
    """A valid US number's area code, exchange and line ("415", "555", "0134")."""
    while True:
        n = _PHONE_SHAPES["US"](rng)
        if phonenumbers.is_valid_number(phonenumbers.parse(n, "US")):
            return n[:3], n[3:6], n[6:]


def _obfuscated(address: str, style: int) -> str:
    """``address`` written as people hide it from harvesters ("jane [at] example [dot] com", ...)."""
    local, domain = address.split("@")
    at, dot = [(" [at] ", " [dot] "), (" (at) ", " (dot) "), (" at ", " dot "), (" AT ", " DOT ")][style % 4]
    if style % 4 == 3:
        local, domain = local.upper(), domain.upper()
    return local.replace(".", dot) + at + domain.replace(".", dot)


def planted_jsonl_records(
    rng: random.Random, n: int, base: list[str] | None = None, source: str = "web"
) -> tuple[list[dict], list[str]]:
    """``n`` JSONL records (``id``, ``text``, ``url``, ``source``, ``title``, ``author_email``, ``ip``) with
    personal data in every field, and the planted values, as written and in their plain forms (decoded, the
    national digits of a phone number), none of which may appear anywhere in a finished run folder (check
    with ``planted_leaks``, which reads through percent-encoding, whitespace and case).

    Per record: the URL carries a percent-encoded e-mail and phone number in its query and a ``user:password``
    (ingest keeps it in ``meta.url_raw``); ``title`` an e-mail or a phone number; ``author_email`` an address;
    ``ip`` a public address; the text (``base[k % len(base)]`` or a filler sentence) an obfuscated address
    (``[at]``/``[dot]``, ``(at)``/``(dot)``, ``at``/``dot``, ``AT``/``DOT`` in turn), a ``%40``-encoded one and
    a phone number broken across a line. Every value is valid for its type (presidio and libphonenumber accept
    its plain form), so each must be found.
    """
    records: list[dict] = []
    planted: list[str] = []
    for k in range(n):
        mail, author, hidden, encoded = (email(rng) for _ in range(4))
        area, exchange, line = _us_phone(rng)
        phone_plain = f"+1 {area} {exchange} {line}"
        user, secret = rng.choice(["deploy", "admin", rng.choice(FIRST)]), password(rng)
        query_phone = quote(phone_plain, safe="")
        url = (
            f"https://{user}:{quote(secret, safe='')}@{rng.choice(HOSTS)}/contact"
            f"?email={quote(mail, safe='')}&tel={query_phone}&ref={k}"
        )
        broken = f"+1 {area}\n{exchange} {line}" if k % 2 else f"({area}) {exchange}-\n{line}"
        title_value = rng.choice([mail, phone_plain])
        body = base[k % len(base)] if base else "The committee met on Tuesday to review the proposal."
        text = (
            f"{body}\n\nQuestions go to {_obfuscated(hidden, k)} (replies within a week).\n"
            f"Unsubscribe: mailto:{quote(encoded, safe='')}\nOffice line {broken} until six.\n"
        )
        records.append(
            {
                "id": f"planted-{k}",
                "text": text,
                "url": url,
                "source": source,
                "title": f"Contact {title_value}",
                "author_email": author,
                "ip": ip(rng),
            }
        )
        planted += [
            mail, quote(mail, safe=""), author, _obfuscated(hidden, k), quote(encoded, safe=""), encoded,
            phone_plain, f"{area} {exchange} {line}", query_phone, broken, f"{user}:{secret}",
            f"{user}:{quote(secret, safe='')}", records[-1]["ip"],
        ]  # fmt: skip
    return records, list(dict.fromkeys(planted))


def _canonical(text: str) -> str:
    """``text`` with percent-escapes decoded and whitespace dropped, so that a value still shows however a
    stage re-encoded or re-spaced it (URL normalisation, whitespace clean-up)."""
    return "".join(unquote(text).split()).lower()


def planted_leaks(blob: str, values: list[str]) -> list[str]:
    """The planted ``values`` that still appear in ``blob`` (any text read back from a run folder), compared
    with percent-escapes decoded, whitespace dropped and case folded."""
    canon = _canonical(blob)
    return [v for v in values if _canonical(v) in canon]
