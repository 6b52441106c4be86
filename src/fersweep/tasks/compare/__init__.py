"""The comparison task: imbalance methods compared honestly. Every arm on the same identity-disjoint
split or on every fold of a cross-validation (out-of-fold predictions pooled, so every image is
tested once), over seeds, each arm against the first (the baseline) with a paired bootstrap that
resamples people, and the seed report's leaky protocol alongside for reference.

`arms`: what runs and what stands in from earlier runs; `report`: the tables, Markdown and
figures; `run`: the task itself."""

from fersweep.tasks.compare.run import run_comparison

__all__ = ["run_comparison"]
