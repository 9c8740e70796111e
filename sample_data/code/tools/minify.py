#!/usr/bin/env python3
"""Strip comments and whitespace from our own JavaScript and print one long line.

Not a real minifier: it does not rename anything and it assumes the input has no regex
literals and no '//' inside strings (the project's lint rules forbid both).
"""

import re
import sys

STRING = r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`)"


def minify(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = "\n".join(re.sub(r"(^|\s)//.*$", "", line) for line in src.splitlines())
    parts = re.split(STRING, src)
    for i in range(0, len(parts), 2):
        part = re.sub(r"\s+", " ", parts[i])
        parts[i] = re.sub(r" ?([{}()\[\];,:=+\-*/<>!?&|.]) ?", r"\1", part)
    return "".join(parts).strip()


def main(paths: list[str]) -> None:
    out = ["/*! sprocket-web v0.4.2 | MIT License | bundled from web/src */"]
    for path in sorted(paths):
        with open(path, encoding="utf-8") as fh:
            out.append(minify(fh.read()))
    sys.stdout.write("".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
