"""Testbed: tiny random models and processors for tests (the `tiny` package), and the trained target/draft pair's
synthetic videos, tokenizer, processor, model builders and training code."""
