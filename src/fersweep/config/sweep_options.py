"""A sweep's options beside its search space: where its workers run (`sweep.launcher`,
conf/launcher/: processes on this machine, or jobs placed by submitit through its local
executor or Slurm), where an arm's search starts (`sweep.warm_start`) and when it stops early
(`sweep.stop_when_stalled`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from fersweep.errors import ConfigError


class LauncherKind(Enum):
    none = "none"  # `sweep.workers` processes here, as before
    local = "local"  # submitit's local executor: the cluster path, on one machine
    slurm = "slurm"  # submitit's Slurm executor: `sbatch` jobs


@dataclass
class Launcher:
    """`jobs` worker jobs, each one sweep worker on one GPU where there is one, against the
    sweep's shared study storage and tracking store, then one finish job (re-train the best,
    the gate, the registry) that waits for them all (Slurm: `--dependency=afterany`).
    `timeout_min` is each job's time limit (submitit's local executor stops a job after 2
    minutes without one); the rest are Slurm's: `partition`, `account`, `gpus_per_node`,
    `cpus_per_task`, `mem_gb`, and `sbatch`, further `#SBATCH` options by name. `folder`:
    where submitit keeps each job's script, pickles and logs, each launch in its own
    sub-folder (job ids repeat). `wait`: stay until the finish job has run (always, for
    `local`)."""

    kind: LauncherKind = LauncherKind.none
    jobs: int = 1
    timeout_min: int = 240
    partition: str | None = None
    account: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int = 4
    mem_gb: float = 16
    sbatch: dict[str, Any] = field(default_factory=dict)
    folder: str = "outputs/launcher"
    wait: bool = False

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ConfigError(f"sweep.launcher.jobs={self.jobs}: launch at least one job")
        if self.timeout_min < 1:
            raise ConfigError(f"sweep.launcher.timeout_min={self.timeout_min}: must be positive")
        if self.gpus_per_node < 0 or self.cpus_per_task < 1 or self.mem_gb <= 0:
            raise ConfigError(
                "sweep.launcher: gpus_per_node >= 0, cpus_per_task >= 1 and mem_gb > 0, got "
                f"{self.gpus_per_node}, {self.cpus_per_task}, {self.mem_gb}"
            )

    @property
    def placed(self) -> bool:
        """Whether submitit places the workers (jobs), rather than this process."""
        return self.kind is not LauncherKind.none

    def shares_machines(self, storage: str | None) -> str | None:
        """Why `storage` cannot coordinate this launcher's jobs, or None if it can."""
        if self.kind is not LauncherKind.slurm:
            return None
        if storage is None or storage.startswith("sqlite"):
            return (
                f"sweep.storage={storage or 'null (sqlite under mlruns/)'}: a Slurm launch runs "
                "its jobs on other machines, which cannot share a local SQLite file; use "
                "postgresql://... or grpc://host:port (make grpc-proxy)"
            )
        return None


@dataclass
class WarmStart:
    """Trials run first, before the sampler proposes any, in a new study: `enqueue`, known-good
    settings (search-space keys and values; keys outside an arm's space are left out there),
    then with `champion` the current champion's settings where they are keys of the arm's
    space (Optuna's enqueue_trial)."""

    enqueue: list[dict[str, Any]] = field(default_factory=list)
    champion: bool = True


@dataclass
class StopWhenStalled:
    """An arm starts no more trials once its last `trials` finished trials brought no better
    value than the best before them (null: never); its MLflow run is tagged with why."""

    trials: int | None = None

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise ConfigError(
                f"sweep.stop_when_stalled.trials={self.trials}: use 1 or more, or null for never"
            )
