"""Server processes of one's own: a free port, and a process group (a server and the workers it
starts) run in the foreground or stopped whole."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping

# How many requests each model server worker runs at once, each on one torch thread: set by
# `fersweep serve` (tracking.registry), read by the served classifier (serving.pyfunc).
REQUESTS_AT_ONCE = "FERSWEEP_REQUESTS_AT_ONCE"


def free_port() -> int:
    """A port nobody listens on now, for a server of one's own (tests, bench)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, seconds: float = 30) -> None:
    """Stop a server started by `TrackingServer.start` and its worker processes."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_until_stopped(command: list[str], env: Mapping[str, str]) -> int:
    """Run a server in the foreground, in a process group of its own; SIGTERM (a service
    manager, a container's stop) or Ctrl-C stops that whole group: the server and the workers
    it started, which would otherwise be left answering on the port. Returns its exit status."""
    process = subprocess.Popen(command, env=env, start_new_session=True)

    def forward(number: int, _frame) -> None:
        with_group(process, number)

    handlers = {
        number: signal.signal(number, forward) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return process.wait()
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        end_group(process)


def with_group(process: subprocess.Popen, number: int) -> bool:
    """Send a signal to the process's group; False once nothing of it is left."""
    try:
        os.killpg(process.pid, number)
        return True
    except ProcessLookupError:
        return False


def end_group(process: subprocess.Popen, seconds: float = 10) -> None:
    """Whatever of the group outlived its leader: asked to stop, then killed."""
    deadline = time.monotonic() + seconds
    if with_group(process, signal.SIGTERM):
        while with_group(process, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        with_group(process, signal.SIGKILL)
    if process.poll() is None:
        process.wait()


def usable_cores() -> int:
    """The cores this process may run on: a Slurm job's or a container's where the scheduler
    pins it, else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def core_share(workers: int) -> int:
    """Each of `workers` processes' share of the usable cores (one at least)."""
    return max(1, usable_cores() // workers)
