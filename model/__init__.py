"""Refinery's compact decoder-only trainer (torch only; never imports prefect)."""

from model.config import PRESETS, ModelConfig, TrainConfig
from model.load import load_model
from model.model import Transformer
from model.train import train

__all__ = ["PRESETS", "ModelConfig", "TrainConfig", "Transformer", "load_model", "train"]
