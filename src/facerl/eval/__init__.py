"""Evaluation: metrics (pure functions), generation of results, and the `facerl evaluate` table."""
