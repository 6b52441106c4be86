"""What a Slurm cluster can give, asked before anything is submitted or recorded: a job the
partition cannot run (a GPU where there is none, more CPUs or memory than its largest node)
is refused in one line naming the launcher's key, instead of a traceback or a job that waits
forever; and how the jobs get the environment of the shell that launched them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from contextlib import AbstractContextManager
from dataclasses import dataclass
from unittest import mock

from fersweep.config.sweep_options import Launcher
from fersweep.errors import ConfigError

# Slurm reads SBATCH_EXPORT before a script's own #SBATCH lines: a cluster that sets it to NONE
# for everyone would start the jobs without this environment (the virtual environment,
# MLFLOW_TRACKING_URI, FERSWEEP_DATA) and submitit's own variable, and every job would fail.
EXPORT_VARIABLE = "SBATCH_EXPORT"


@dataclass(frozen=True)
class Partition:
    """The largest node of a partition, as `sinfo` reports it."""

    name: str
    cpus: int
    memory_mb: int
    gpus: int


def sbatch_options(launcher: Launcher, name: str) -> dict[str, object]:
    """submitit's SlurmExecutor parameters for the launcher (None: the cluster's default)."""
    options = {
        "job_name": name,
        "time": launcher.timeout_min,
        "gpus_per_node": launcher.gpus_per_node or None,
        "cpus_per_task": launcher.cpus_per_task,
        "mem": f"{int(launcher.mem_gb * 1024)}MB",
        "partition": launcher.partition,
        "account": launcher.account,
        "additional_parameters": {"export": "ALL", **launcher.sbatch},
    }
    return {key: value for key, value in options.items() if value is not None}


def check_cluster(launcher: Launcher) -> None:
    """Refuse, naming the key, a job this cluster cannot run; then ask sbatch itself
    (`--test-only`) about everything else (accounts, QOS, limits)."""
    for command in ("sbatch", "sinfo"):
        if shutil.which(command) is None:
            raise ConfigError(
                f"launcher@sweep.launcher={launcher.kind.value}: no `{command}` on PATH; run it "
                "on the cluster's login node (or scripts/slurm-local.sh up on this machine)"
            )
    export = str(launcher.sbatch.get("export", "ALL"))
    if not export.upper().startswith("ALL"):
        raise ConfigError(
            f"sweep.launcher.sbatch.export={export}: the jobs need the environment they were "
            "launched from (the virtual environment, MLFLOW_TRACKING_URI); leave it unset"
        )
    partition = largest_node(launcher.partition)
    _check_fits(launcher, partition)
    _ask_sbatch(launcher)


def largest_node(name: str | None) -> Partition:
    """The named partition's (or the default partition's) largest node."""
    lines = _run(["sinfo", "--noheader", "--format=%P|%c|%m|%G"]).splitlines()
    rows = [line.split("|") for line in lines if line.strip()]
    default = next((r[0].rstrip("*") for r in rows if r[0].endswith("*")), None)
    wanted = name or default
    mine = [r for r in rows if r[0].rstrip("*") == wanted]
    if not mine:
        known = ", ".join(sorted({r[0].rstrip("*") for r in rows})) or "none"
        key = f"sweep.launcher.partition={name}" if name else "sweep.launcher.partition=null"
        raise ConfigError(f"{key}: no such partition on this cluster (it has: {known})")
    return Partition(
        wanted,
        max(_number(r[1]) for r in mine),
        max(_number(r[2]) for r in mine),
        max(_gpus(r[3]) for r in mine),
    )


def _check_fits(launcher: Launcher, partition: Partition) -> None:
    where = f"partition {partition.name}'s largest node"
    if launcher.gpus_per_node > partition.gpus:
        raise ConfigError(
            f"sweep.launcher.gpus_per_node={launcher.gpus_per_node}: {where} has "
            f"{partition.gpus} GPUs (launcher@sweep.launcher=slurm_cpu asks for none)"
        )
    if launcher.cpus_per_task > partition.cpus:
        raise ConfigError(
            f"sweep.launcher.cpus_per_task={launcher.cpus_per_task}: {where} has "
            f"{partition.cpus} CPUs"
        )
    if launcher.mem_gb * 1024 > partition.memory_mb:
        raise ConfigError(
            f"sweep.launcher.mem_gb={launcher.mem_gb:g}: {where} has "
            f"{partition.memory_mb / 1024:.1f} GB"
        )


def _ask_sbatch(launcher: Launcher) -> None:
    options = sbatch_options(launcher, "fersweep-check")
    extra = options.pop("additional_parameters")
    flags = [_flag(key, value) for key, value in {**options, **extra}.items()]
    command = ["sbatch", "--test-only", *flags, "--wrap=true"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        answer = " ".join((done.stderr or done.stdout).split())
        raise ConfigError(f"sweep.launcher: the cluster refuses such a job: {answer}")


def _flag(key: str, value: object) -> str:
    name = key.replace("_", "-")
    return f"--{name}" if value is True else f"--{name}={value}"


def launch_environment() -> AbstractContextManager:
    """While jobs are submitted: the jobs get this environment whatever the cluster's default
    (`--export=ALL` in their scripts, which SBATCH_EXPORT would otherwise override); the
    variable is as it was afterwards."""
    return mock.patch.dict(os.environ, {EXPORT_VARIABLE: "ALL"})


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except subprocess.CalledProcessError as error:
        answer = " ".join((error.stderr or "").split())
        raise ConfigError(f"sweep.launcher: `{' '.join(command)}` failed: {answer}") from error


def _number(text: str) -> int:
    match = re.match(r"\d+", text.strip())
    return int(match.group()) if match else 0


def _gpus(gres: str) -> int:
    """GPUs in a node's GRES string, e.g. 'gpu:a100:4(S:0-1),shard:8' -> 4; '(null)' -> 0."""
    found = re.findall(r"gpu(?::[^:,()]+)?:(\d+)", gres)
    return sum(int(n) for n in found)
