#!/usr/bin/env bash
# Tag a release after checking that the tree is clean and the tests pass.
# Usage: scripts/release.sh [--dry-run]
source "$(dirname "$0")/common.sh"
require git python3

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=1
fi

cd "$REPO_ROOT"
ver="$(version)"
[[ -n "$ver" ]] || die "could not read the version from pyproject.toml"
tag="v$ver"

if [[ -n "$(git status --porcelain)" ]]; then
    die "working tree is not clean; commit or stash first"
fi
if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
    die "tag $tag already exists; bump the version in pyproject.toml"
fi
grep -q "^## $ver " docs/CHANGELOG.md || die "docs/CHANGELOG.md has no entry for $ver"

log "running tests"
.venv/bin/python -m pytest -q

log "bundling the dashboard"
./scripts/bundle.sh
git diff --quiet -- web/dist || die "web/dist/app.min.js is out of date; commit the rebuilt bundle"

if (( dry_run )); then
    log "dry run: would tag $tag"
    exit 0
fi
git tag -a "$tag" -m "Sprocket $ver"
log "tagged $tag; push with: git push origin $tag"
