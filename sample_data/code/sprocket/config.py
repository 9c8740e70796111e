"""Load and validate the configuration file.

The file is YAML in the documentation, but to avoid a dependency we accept the small subset
we actually use: nested mappings, scalars and inline lists. Anything fancier is rejected with a
clear message rather than silently misread.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

DEFAULTS: dict = {
    "database": "~/.local/share/sprocket/rides.db",
    "units": {"system": "metric", "wheel": "28-622"},
    "moving_time": {"stop_speed_ms": 0.5, "max_gap_s": 300},
    "elevation": {"smooth_window": 5, "threshold_m": 2.0},
    "import": {"watch_dir": "~/Rides/inbox", "default_tags": [], "skip_duplicates": True},
    "dashboard": {"port": 8750, "colours": ["#e8f1f8", "#1f5f8b", "#0b2a40"]},
}


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    values: dict = field(default_factory=lambda: _deep_copy(DEFAULTS))

    def get(self, dotted: str):
        node = self.values
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(dotted)
            node = node[part]
        return node


def _deep_copy(d):
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return list(d)
    return d


def _scalar(text: str):
    text = text.split(" #", 1)[0].strip()
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("["):
        try:
            return ast.literal_eval(text)
        except (SyntaxError, ValueError) as exc:
            raise ConfigError(f"bad inline list: {text}") from exc
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip("\"'")


def parse(text: str) -> dict:
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if "\t" in raw[:indent]:
            raise ConfigError(f"line {lineno}: tabs are not allowed for indentation")
        key, sep, rest = raw.strip().partition(":")
        if not sep:
            raise ConfigError(f"line {lineno}: expected 'key: value'")
        while stack and indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        if rest.split(" #", 1)[0].strip():
            parent[key] = _scalar(rest)
        else:
            child: dict = {}
            parent[key] = child
            stack.append((indent, child))
    return root


def merge(base: dict, override: dict, path: str = "") -> dict:
    for key, value in override.items():
        where = f"{path}.{key}" if path else key
        if key not in base:
            raise ConfigError(f"unknown setting: {where}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a section")
            merge(base[key], value, where)
        else:
            base[key] = value
    return base


def load(path: Path | None) -> Config:
    cfg = Config()
    if path is not None and path.is_file():
        merge(cfg.values, parse(path.read_text(encoding="utf-8")))
    return cfg
