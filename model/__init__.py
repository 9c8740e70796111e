"""Refinery's compact decoder-only trainer (torch only; never imports prefect).

Names load on first use, so checking a ``TrainConfig`` (a recipe, an ablation plan) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRESETS": "model.config",
    "ModelConfig": "model.config",
    "TrainConfig": "model.config",
    "load_model": "model.load",
    "Transformer": "model.model",
    "train": "model.train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
