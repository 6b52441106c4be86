"""Train one tracked run: `python train.py model.filters=32 balancing=balanced`."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fersweep.config.aliases import canonical
from fersweep.config.compose import register_resolvers
from fersweep.errors import exits_cleanly
from fersweep.tasks.train import train

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> float:
    result = train(cfg, overrides=HydraConfig.get().overrides.task)
    return result.metrics[f"{cfg.eval_split}/macro_f1"]


if __name__ == "__main__":
    sys.argv[1:] = canonical(sys.argv[1:])  # the seed report's short names (config.aliases)
    main()
