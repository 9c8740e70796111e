#!/usr/bin/env bash
# Shared helpers for the project's shell scripts. Source this file; do not run it.
# Kept deliberately small: anything more complicated belongs in Python.

set -euo pipefail

# Absolute path of the repository root, whichever directory the caller was run from.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

log()  { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# require CMD...: fail early, with a helpful message, if a tool is missing.
require() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is required but was not found in PATH"
    done
}

# make_tmpdir: create a private temporary directory that is removed when the script exits.
make_tmpdir() {
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/sprocket.XXXXXX")"
    # shellcheck disable=SC2064  # expand $dir now, not when the trap fires
    trap "rm -rf -- '$dir'" EXIT
    printf '%s\n' "$dir"
}

# version: the package version from pyproject.toml, without needing Python.
version() {
    sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/pyproject.toml" | head -n 1
}
