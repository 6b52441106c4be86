"""The tasks a user runs: train one run, sweep, compare, the champion gate, the benchmark, the
evaluation of a labelled folder and the demo. Tasks sit on top: nothing below imports them."""
