"""Model-based quality: the fastText classifier and the perplexity filter."""
