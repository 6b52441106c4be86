"""Every config a user can pick composes and builds: each option of each config group, each
experiment, and every sweep, comparison and benchmark definition. A broken option fails here,
not in a user's run."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from fersweep.config.bench_schemas import BenchDefinition
from fersweep.config.compose import build, compose_definition
from fersweep.config.schemas import ChampionGate, ComparisonDefinition
from fersweep.tasks.champion import own_model
from fersweep.tasks.compare.arms import PlannedArm
from fersweep.tasks.compare.run import plan_arms
from fersweep.tasks.fitting import quiet_library
from fersweep.tasks.sweep import Sweep
from tests.conftest import CONFIG_DIR, PROJECT_ROOT, WEIGHTS

GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())
SWEEP_GROUPS = ("launcher",)  # placed under `sweep` by conf/sweep.yaml, not in a run's config
OPTIONS = [
    (g, f.stem)
    for g in GROUPS
    if g not in SWEEP_GROUPS
    for f in sorted((CONFIG_DIR / g).glob("*.yaml"))
]
LAUNCHERS = sorted(f.stem for f in (CONFIG_DIR / "launcher").glob("*.yaml"))
# Options that fix another group's setting, and say so when it is missing (test_mini_xception).
COMPANIONS = {("model", "mini_xception"): ["data.preprocess.size=64"]}


@pytest.fixture(autouse=True)
def fer2013_weights(monkeypatch):
    monkeypatch.setenv("FERSWEEP_WEIGHTS", str(WEIGHTS))  # the install's copy, not tmp_path's


def definitions(folder: str) -> list[str]:
    return sorted(f.stem for f in (PROJECT_ROOT / folder).glob("*.yaml"))


def build_run(cfg) -> None:
    """Everything `train` builds before it reads any data."""
    build(cfg.data)
    build(cfg.model)
    build(cfg.tracking)
    for callback in cfg.callbacks.values():
        build(callback)
    for logger in cfg.logger.values():
        build(logger, run_id="0" * 32)
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        assert get_class(cfg.trainer._target_)  # a GPU trainer cannot be built on this machine
    else:
        with quiet_library():  # as fit_network builds it: no srun hint where Slurm is installed
            build(cfg.trainer)


def test_every_config_group_has_options():
    assert {"data", "model", "loss", "balancing", "trainer", "experiment"} <= set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_of_every_group_composes_and_builds(compose, group, option):
    cfg = compose(f"{group}={option}", *COMPANIONS.get((group, option), []))
    if group in ("hydra", "paths"):
        assert OmegaConf.to_container(cfg, resolve=False)
        return
    build_run(cfg)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes_into_a_sweep(launcher, tmp_path):
    sweep = Sweep.compose(
        CONFIG_DIR,
        [
            f"launcher@sweep.launcher={launcher}",
            "sweep.storage=postgresql://postgres@127.0.0.1:5432/optuna",  # Slurm needs it
            f"paths.root_dir={tmp_path}",
        ],
    )
    assert sweep.definition.launcher.kind.value == launcher.removesuffix("_cpu")
    assert sweep.overrides == [f"paths.root_dir={tmp_path}"]  # the launcher is not a run's


@pytest.mark.parametrize("name", definitions("sweeps"))
def test_every_sweep_definition_composes_and_every_arm_builds(name, tmp_path):
    sweep = Sweep.compose(CONFIG_DIR, [f"sweeps@sweep={name}", f"paths.root_dir={tmp_path}"])
    sweep.check()  # one trial config per arm (and per conditional setting), composed and built
    assert sweep.definition.arms


def test_the_champion_must_beat_hog_and_the_fer2013_probe_by_default_and_both_compose(tmp_path):
    assert set(ChampionGate().opponents()) == {"hog_svm", "fer_probe"}
    assert ChampionGate(references={"hog_svm": ["model=hog_svm"]}).opponents() == {
        "hog_svm": ["model=hog_svm"]
    }  # a definition's own list is the whole list
    sweep = Sweep.compose(CONFIG_DIR, ["sweeps@sweep=default", f"paths.root_dir={tmp_path}"])
    gate = sweep.definition.gate
    assert gate.opponents() == ChampionGate().opponents() and gate.folds == 5
    base = [*sweep.definition.base, f"paths.root_dir={tmp_path}"]
    for name, overrides in gate.opponents().items():
        reference = PlannedArm(name, [*own_model(base, overrides), *overrides], [[]])
        ((_, cfg),) = reference.configs(CONFIG_DIR, [1]).values()
        assert cfg.model._target_.rsplit(".", 1)[1] in {"HogLinearSVC", "FerProbe"}


@pytest.mark.parametrize("name", definitions("comparisons"))
def test_every_comparison_definition_composes_and_every_arm_builds(name, tmp_path):
    composed, overrides = compose_definition(
        CONFIG_DIR, "compare", [f"comparisons@compare={name}", f"paths.root_dir={tmp_path}"]
    )
    definition: ComparisonDefinition = OmegaConf.to_object(composed.compare)
    base = [*definition.base, *overrides]
    for arm in plan_arms(definition, base, overrides):
        first_part = PlannedArm(arm.name, arm.overrides, arm.parts[:1], arm.tags)
        assert first_part.configs(CONFIG_DIR, definition.seeds[:1])  # composed and built


@pytest.mark.parametrize("name", definitions("bench"))
def test_every_benchmark_definition_composes(name, tmp_path):
    composed, _ = compose_definition(
        CONFIG_DIR, "bench", [f"bench={name}", f"paths.root_dir={tmp_path}"]
    )
    settings: BenchDefinition = OmegaConf.to_object(composed.bench)
    for sweep in (settings.sweep.definition, settings.tracking.definition):
        assert (PROJECT_ROOT / "sweeps" / f"{sweep}.yaml").is_file()
