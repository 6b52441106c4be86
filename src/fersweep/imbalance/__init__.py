"""Fighting the class skew: balancing the training split, imbalance-aware losses, the augmentation
that makes copies, and the post-hoc steps applied before scoring."""
