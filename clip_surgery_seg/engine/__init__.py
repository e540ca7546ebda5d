"""Evaluation engine: the run loop, resumable progress, results files and provenance."""
