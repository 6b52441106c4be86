"""torch's NaN fill of new tensors (`torch.utils.deterministic.fill_uninitialized_memory`, in
effect while deterministic algorithms are on, as `trainer.deterministic: warn` turns them on)
left on, against fersweep's trainers turning it off, alternated: the bench's bare loop, or
Lightning's epochs (the bench's finetune section, memo off). usage: fill.py bare|lightning <rounds>"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.utils.deterministic

import fersweep.tasks.bench.measure as measure
import fersweep.tasks.fitting as fitting
from ab import OVERRIDES
from fersweep.config.compose import build, compose_config
from fersweep.tasks.bench.finetune import bare_phase_rates, lightning_phase_rates


def main() -> None:
    what, rounds = sys.argv[1], int(sys.argv[2])
    cfg = compose_config(Path("conf"), OVERRIDES)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    datamodule.setup()
    for round_ in range(rounds):
        for fill in (True, False):
            keep = lambda: None  # noqa: E731
            turn_off = fitting.without_nan_fill
            measure.without_nan_fill = fitting.without_nan_fill = keep if fill else turn_off
            torch.utils.deterministic.fill_uninitialized_memory = fill
            if what == "bare":
                rates = bare_phase_rates(cfg, datamodule, 40)
            else:
                rates = lightning_phase_rates(cfg, datamodule)
            fitting.without_nan_fill = measure.without_nan_fill = turn_off
            state = torch.utils.deterministic.fill_uninitialized_memory
            print(round_, "fill on " if fill else "fill off", "(as run:", state, ")",
                  {k: round(v) for k, v in rates.items()}, flush=True)


if __name__ == "__main__":
    main()
