"""Scoring: metrics and per-class reports, statistics over people (the paired bootstrap),
figures, and the terminal view of an evaluation."""
