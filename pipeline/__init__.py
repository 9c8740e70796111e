"""Refinery curation logic: Prefect-free, torch-free stages over columnar batches."""

import os
from pathlib import Path

# presidio (``pipeline.pii``) imports tldextract, which would otherwise try to download the public suffix list
# when imported; with no URLs it uses the snapshot bundled with the package. Set before any submodule loads.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

__version__ = "0.1.0"

# The models the project trains and ships (language ID, quality, perplexity).
MODELS_DIR = Path(__file__).resolve().parent / "models"
