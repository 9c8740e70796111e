"""The sentencepiece tokenizer: training and compression metrics."""
