"""Gouache: a self-hosted image generation service that speaks OpenAI's image APIs."""

__version__ = "0.1.0"
