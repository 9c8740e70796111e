"""Numeric field types and limits shared by the configs, so each bound is declared once.

Recipes and plans are YAML, where slips are easy: ``true`` where a count belongs, ``1.0e+11`` for a
vocabulary size, ``.nan`` for a threshold. Pydantic's lax mode would read the first two as 1 and
100000000000, and NaN fails every comparison, so a rule written as "reject if x > threshold" would
keep everything. ``Int`` and ``Float`` refuse all three; every numeric config field uses one of them
with its own ``ge``/``gt``/``le``/``lt`` (``tests/test_recipe_bounds.py`` fails on a field without).

A field must not restate a constraint its alias already has (``x: ZeroToOne = Field(0.5, ge=0.1)``):
pydantic keeps the alias' ``ge``, so the field's would be silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AllowInfNan, Field, Strict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

# An integer as written: no bool (true -> 1), no float (1e11, 5.0) and no string ("5").
Int = Annotated[int, Strict()]
# A finite int or float (2 -> 2.0); bools, strings, NaN and +-inf are refused.
Float = Annotated[float, Strict(), AllowInfNan(False)]

ZeroToOne = Annotated[Float, Field(ge=0.0, le=1.0)]  # a share, a ratio of parts to a whole, a probability
# fastText takes a C int seed and numpy's RandomState (datasketch) one below 2**32: this fits both.
Seed = Annotated[Int, Field(ge=0, lt=2**31)]
# sentencepiece refuses num_threads outside [1, 1024]; nothing here uses more.
Threads = Annotated[Int, Field(ge=1, le=1024)]

# Character (and so word, line, sentence) counts within one document. Ingest rejects records over
# max_record_mb (64 MB by default) and splits books, so no document comes near 10**9 characters.
MAX_DOC_CHARS = 10**9
# Text samples and working memory held in RAM, in MB (1 TB).
MAX_MB = 1_000_000

# Training (model.config.TrainConfig and the ablation plan's TrainSettings; kept here, torch-free, so a
# plan validates without importing torch).
Steps = Annotated[Int, Field(gt=0, le=10**9)]
BatchSize = Annotated[Int, Field(gt=0, le=65_536)]
SeqLen = Annotated[Int, Field(gt=0, le=1_048_576)]
LearningRate = Annotated[Float, Field(gt=0.0, le=10.0)]  # far above any stable AdamW rate
WeightDecay = Annotated[Float, Field(ge=0.0, le=10.0)]
GradClip = Annotated[Float, Field(ge=0.0, le=1e6, description="max global grad norm; 0 disables")]
EvalBatches = Annotated[Int, Field(gt=0, le=1_000_000, description="max validation batches per source")]


def field_error(field: str, message: str, value: Any) -> ValidationError:
    """A cross-field rule's error, located at ``field`` so that a recipe error names the key to change.

    Raised from a model validator (pydantic-core takes a ValidationError there and prefixes its loc);
    a plain ValueError would be located at the model only.
    """
    detail = InitErrorDetails(
        type=PydanticCustomError("cross_field", "{message}", {"message": message}), loc=(field,), input=value
    )
    return ValidationError.from_exception_data("config", [detail])
