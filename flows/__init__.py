"""Prefect flows and the CLI: thin orchestration over ``pipeline`` stages and the ``model`` trainer."""

import os

# Set before Prefect is imported anywhere: a temporary server can take ~20 s to start here,
# and its analytics service logs "database is locked" tracebacks on every run.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# With analytics off, the client's telemetry (and its first-run notice) is off too: it honours only DO_NOT_TRACK.
if os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"].strip().lower() in ("false", "0", "no", "off"):
    os.environ.setdefault("DO_NOT_TRACK", "1")
# presidio imports tldextract, which otherwise tries to download the public-suffix list.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
