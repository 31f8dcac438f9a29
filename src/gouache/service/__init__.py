"""Use cases: turn validated requests into engine jobs, record them, and shape results (no HTTP here)."""
