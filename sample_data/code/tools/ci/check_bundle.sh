#!/usr/bin/env bash
# CI check: the committed bundle must match a fresh build of web/src.
source "$(dirname "$0")/common.sh"
require python3 cmp

tmp="$(make_tmpdir)"
python3 "$REPO_ROOT/tools/minify.py" "$REPO_ROOT"/web/src/*.js > "$tmp/app.min.js"
if ! cmp -s "$tmp/app.min.js" "$REPO_ROOT/web/dist/app.min.js"; then
    die "web/dist/app.min.js is stale: run ./scripts/bundle.sh and commit the result"
fi
log "bundle is up to date"
