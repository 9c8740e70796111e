"""The ``pii`` stage's config: the entity types it finds, their placeholders and policies, and where it applies."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.bounds import MAX_DOC_CHARS, Float, Int
from pipeline.pii.secret_patterns import SECRET_PATTERNS
from pipeline.schema import SOURCES

# Presidio's own recognizers (offline, regex + checksum) first, then Refinery's secret recognizers.
PRESIDIO_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN")
SECRET_ENTITIES = tuple(SECRET_PATTERNS)
SUPPORTED_ENTITIES = PRESIDIO_ENTITIES + SECRET_ENTITIES

DEFAULT_PLACEHOLDERS = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "IP_ADDRESS": "<IP>",
    "CREDIT_CARD": "<CREDIT_CARD>",
    "IBAN_CODE": "<IBAN>",
    "US_SSN": "<SSN>",
    "URL_CREDENTIALS": "<CREDENTIALS>",
    "AWS_ACCESS_KEY": "<AWS_KEY>",
    "GITHUB_TOKEN": "<GITHUB_TOKEN>",
    "GITLAB_TOKEN": "<GITLAB_TOKEN>",
    "SLACK_TOKEN": "<SLACK_TOKEN>",
    "PRIVATE_KEY": "<PRIVATE_KEY>",
    "JWT": "<JWT>",
    "PASSWORD": "<PASSWORD>",
}

Policy = Literal["placeholder", "mask", "hash", "drop"]

# Address ranges that ``keep_ip_ranges`` can exempt from replacement.
IP_RANGES: dict[str, tuple[str, ...]] = {
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
    "loopback": ("127.0.0.0/8", "::1/128"),
    "documentation": ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"),
    "link_local": ("169.254.0.0/16", "fe80::/10"),
}
IpRange = Literal["private", "loopback", "documentation", "link_local"]


class PiiConfig(BaseModel):
    """Which PII to find, what to do with each type, and where."""

    model_config = ConfigDict(extra="forbid")

    entities: list[str] = Field(default_factory=lambda: list(SUPPORTED_ENTITIES))
    # entity -> replacement token; entities missing here fall back to "<ENTITY_TYPE>"
    placeholders: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))
    # what happens to a finding: "placeholder" (typed token, e.g. <EMAIL>), "mask" (letters and digits ->
    # mask_char, separators kept), "hash" (<EMAIL:1f0c9a2b7e4d>: salted, the same value gives the same token
    # in every document), "drop" (placeholder, and the document is rejected when it holds more than
    # drop_above findings of "drop" types)
    policy: Policy = "placeholder"
    policies: dict[str, Policy] = Field(default_factory=dict)  # per entity type, overrides ``policy``
    hash_salt: str = "refinery"  # set a private salt per corpus; without it hashes can be brute-forced
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    drop_above: Int = Field(default=0, ge=0, le=MAX_DOC_CHARS)
    # regions libphonenumber tries for numbers written without "+country code"
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "IN"])
    # IP ranges left as they are in prose (web, book, other) and in code: in source code, private, loopback,
    # documentation and link-local addresses are test fixtures, defaults and examples, not anyone's address
    keep_ip_ranges: list[IpRange] = Field(default_factory=list)
    keep_ip_ranges_in_code: list[IpRange] = Field(
        default_factory=lambda: ["private", "loopback", "documentation", "link_local"]
    )
    # final (re-scored) result score needed to replace a span; e-mails, Luhn-valid cards, IBANs and secrets
    # score 1.0, IPs 0.6, formatted phones 0.6, SSNs 0.5, bare digit runs 0.4 (0.75 after a phone word)
    score_threshold: Float = Field(0.5, gt=0.0, le=1.0)
    # Optional names and places: a spaCy model package (e.g. "en_core_web_sm") that must be installed
    # separately; off by default. Every applicable document then goes through the model (no pre-check),
    # about a thousand times slower than the rest of the stage; see docs/PII.md.
    ner_model: str | None = None
    ner_entities: list[Literal["PERSON", "LOCATION"]] = Field(default_factory=lambda: ["PERSON", "LOCATION"])
    apply_to_sources: list[str] = Field(default_factory=lambda: ["web", "book", "code", "other"])

    @model_validator(mode="after")
    def _check(self) -> PiiConfig:
        unknown = [e for e in [*self.entities, *self.policies] if e not in SUPPORTED_ENTITIES]
        if unknown:
            raise ValueError(f"unsupported PII entities {unknown}; supported: {list(SUPPORTED_ENTITIES)}")
        bad_sources = [s for s in self.apply_to_sources if s not in SOURCES]
        if bad_sources:
            raise ValueError(f"unknown sources {bad_sources}; expected a subset of {list(SOURCES)}")
        return self

    def placeholder(self, entity: str) -> str:
        return self.placeholders.get(entity, f"<{entity}>")

    def policy_for(self, entity: str) -> Policy:
        return self.policies.get(entity, self.policy)

    def replacement(self, entity: str, value: str) -> str:
        """The text that replaces ``value`` (a finding of ``entity``) under this config's policy."""
        policy = self.policy_for(entity)
        if policy == "mask":
            return "".join(self.mask_char if c.isalnum() else c for c in value)
        token = self.placeholder(entity)
        if policy == "hash":
            digest = hashlib.blake2b(value.encode(), key=self.hash_salt.encode()[:64], digest_size=6).hexdigest()
            return f"{token[:-1]}:{digest}>" if token.startswith("<") and token.endswith(">") else f"{token}:{digest}"
        return token
