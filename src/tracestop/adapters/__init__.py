"""Adapters that feed a ``Monitor`` from a live generation (Hugging Face ``generate``, ...)."""
