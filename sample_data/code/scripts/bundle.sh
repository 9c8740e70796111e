#!/usr/bin/env bash
# Concatenate and minify the dashboard sources into web/dist/app.min.js.
# The minifier is intentionally naive (comments and whitespace only), which is why the sources
# avoid regex literals and never put '//' inside a string.
source "$(dirname "$0")/common.sh"
require python3

out="$REPO_ROOT/web/dist/app.min.js"
mkdir -p "$(dirname "$out")"
log "bundling $(find "$REPO_ROOT/web/src" -name '*.js' | wc -l) files into ${out#"$REPO_ROOT"/}"
python3 "$REPO_ROOT/tools/minify.py" "$REPO_ROOT"/web/src/*.js > "$out.tmp"
mv "$out.tmp" "$out"
log "wrote $(wc -c < "$out") bytes"
