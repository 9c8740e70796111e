"""Scripts that train the models shipped in pipeline/models (they read ../shared/data).

``pipeline/training/README.md`` gives, for every shipped file, the exact command and data that
produce it (language ID here; the quality classifier and the bigram LM through ``refinery
train-quality`` and ``refinery train-lm``).
"""
