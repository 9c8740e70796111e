# tinyini 1.3.0 -- a tiny INI parser. Vendored copy; do not edit here.
"""Parse INI text into nested dictionaries.

Supports sections, ``key = value`` and ``key: value`` pairs, ``;`` and ``#`` comments,
continuation lines (indented lines append to the previous value) and ``[section.sub]``
dotted section names, which become nested dictionaries.
"""

__version__ = "1.3.0"
__all__ = ["loads", "load", "ParseError"]


class ParseError(ValueError):
    def __init__(self, lineno, message):
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno


def _section(root, dotted):
    node = root
    for part in dotted.split("."):
        part = part.strip()
        if not part:
            raise ValueError("empty section name component")
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"{part!r} is both a key and a section")
    return node


def _coerce(value):
    low = value.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def loads(text, coerce=True):
    root = {}
    current = root
    last_key = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if line[0] in " \t" and last_key is not None:
            current[last_key] = f"{current[last_key]}\n{stripped}"
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                raise ParseError(lineno, "unterminated section header")
            try:
                current = _section(root, stripped[1:-1])
            except ValueError as exc:
                raise ParseError(lineno, str(exc)) from None
            last_key = None
            continue
        for sep in ("=", ":"):
            if sep in stripped:
                key, value = stripped.split(sep, 1)
                break
        else:
            raise ParseError(lineno, f"expected 'key = value', got {stripped!r}")
        key = key.strip()
        if not key:
            raise ParseError(lineno, "empty key")
        current[key] = value.strip()
        last_key = key
    if coerce:
        _coerce_tree(root)
    return root


def _coerce_tree(node):
    for key, value in node.items():
        if isinstance(value, dict):
            _coerce_tree(value)
        else:
            node[key] = _coerce(value)


def load(fp, coerce=True):
    return loads(fp.read(), coerce=coerce)
