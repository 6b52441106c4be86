"""The classifier served: a classifier built with the default recipe (its face step included),
put behind `fersweep serve` as a user runs it, and asked by concurrent clients for one image a
request and for batches."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fersweep.config.bench_schemas import BenchServing
from fersweep.config.compose import build
from fersweep.errors import FersweepError
from fersweep.services.processes import free_port
from fersweep.tasks.train import RunPlacement, train

START_SECONDS = 240  # a loaded machine can take minutes to import MLflow


def bench_serving(cfg, settings: BenchServing) -> dict[str, Any]:
    """Images/s and latency (p50, p99) at `settings.concurrency` concurrent clients, one image a
    request and `settings.batch` images a request, of a classifier trained by `cfg`."""
    result = train(cfg, placement=RunPlacement(name="bench-serving"))
    images = test_images(cfg, settings.images)
    model = f"runs:/{result.run_id}/classifier"
    measured: dict[str, Any] = {"concurrency": settings.concurrency, "batch_images": settings.batch}
    for workers in settings.workers:
        with served(model, cfg.tracking.tracking_uri, workers) as port:
            for _ in range(workers):  # the first requests load what the rest reuse
                post(port, images[:1])
            measured[f"workers_{workers}"] = {
                "single": load(port, [[image] for image in images], settings.concurrency),
                "batch": load(port, batches(images, settings.batch), settings.concurrency),
            }
    return measured


def test_images(cfg, count: int) -> list[bytes]:
    """The files of the first `count` test images, as a client would send them."""
    datamodule = build(cfg.data)
    datamodule.setup()
    files, _ = datamodule.files_and_people("test")
    return [(datamodule.images_dir / name).read_bytes() for name in files[:count]]


def batches(images: list[bytes], size: int) -> list[list[bytes]]:
    return [images[start : start + size] for start in range(0, len(images), size)]


@contextmanager
def served(model: str, tracking_uri: str, workers: int) -> Iterator[int]:
    """`fersweep serve` for `model` on a free port with `workers` processes, until the block
    ends; then SIGTERM, which stops it and what it started."""
    port = free_port()
    fersweep = Path(sys.executable).parent / "fersweep"
    settings = [f"tracking.tracking_uri='{tracking_uri}'", f"model_uri={model}"]
    server = subprocess.Popen(
        [str(fersweep), "serve", *settings, f"port={port}", f"workers={workers}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_up(server, port)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def wait_until_up(server: subprocess.Popen, port: int) -> None:
    deadline = time.time() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return
        except OSError:
            if server.poll() is not None:
                raise FersweepError(
                    f"fersweep serve stopped: {server.stderr.read().decode()[-2000:]}"
                ) from None
            if time.time() > deadline:
                raise FersweepError(f"fersweep serve did not answer in {START_SECONDS} s") from None
            time.sleep(1)


def load(port: int, requests: list[list[bytes]], concurrency: int) -> dict[str, float]:
    """Every request sent by `concurrency` clients at once: images/s over the whole load, and
    the requests' latency."""
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as clients:
        latencies = list(clients.map(lambda images: post(port, images), requests))
    seconds = time.perf_counter() - start
    images = sum(len(request) for request in requests)
    return {
        "requests": len(requests),
        "images": images,
        "images_per_s": images / seconds,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
    }


def post(port: int, images: list[bytes]) -> float:
    """One request's seconds; a refused request is an error (the bench sends real pictures)."""
    rows = [[base64.b64encode(image).decode()] for image in images]
    # whole_image: a picture without a face the detector finds is classified whole, as the
    # evaluation does; without it such a request is refused (HTTP 400)
    split = {"columns": ["image"], "data": rows}
    body = json.dumps({"dataframe_split": split, "params": {"whole_image": True}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())["predictions"]
    if len({row["image"] for row in answer}) != len(images):
        raise FersweepError(f"the server answered {len(answer)} rows for {len(images)} images")
    return time.perf_counter() - start
