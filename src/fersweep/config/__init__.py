"""Hydra plumbing: composing configs from overrides, the short names of the seed report's knobs,
and the schemas of sweep, comparison and benchmark definitions."""
