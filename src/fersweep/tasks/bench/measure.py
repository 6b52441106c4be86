"""The measurements of one machine: preprocessing, the face steps, training and end to end."""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import lightning.pytorch as pl
import numpy as np
import torch

from fersweep.config.bench_schemas import BenchDefinition
from fersweep.config.compose import build
from fersweep.data.cache import load_images, torch_threads
from fersweep.data.datamodule import EmotionDataModule
from fersweep.tasks.fitting import build_trainer, quiet_library, without_nan_fill
from fersweep.tasks.train import RunPlacement, train


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (the training loop only, validation excluded)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def machine() -> dict[str, Any]:
    """What ran the measurement. A cloud VM's CPU model can change between sessions, and torch
    picks its CPU kernels by the instruction set (`cpu_capability`): figures and float results
    compare only between runs on the same of both."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def cpu_model() -> str:
    """The CPU's model name as Linux reports it ("" where it does not)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def bench_preprocessing(cfg) -> dict[str, float]:
    """Images/s preprocessing every image from its file (cold) and from the cache (warm), and
    the whole warm data set-up (legend, fingerprint, cached arrays, cached split) beside it."""
    datamodule = build(cfg.data)
    datamodule.setup()
    load = partial(
        load_images,
        datamodule.image_set.records,
        datamodule.images_dir,
        datamodule.preprocessor,
        data_fingerprint=datamodule.fingerprint,
        workers=datamodule.decode_workers,
    )
    cache_dir = Path(datamodule.cache_dir)
    load(cache_dir=cache_dir)  # fills the cache for exactly these records if it was empty
    cold_seconds = _seconds(lambda: load(cache_dir=None))
    warm_seconds = _seconds(lambda: load(cache_dir=cache_dir))
    fresh = build(cfg.data)
    count = len(datamodule.image_set.records)
    return {
        "images": count,
        "cold_seconds": cold_seconds,
        "cold_images_per_s": count / cold_seconds,
        "warm_images_per_s": count / warm_seconds,
        "warm_over_cold": cold_seconds / warm_seconds,
        "warm_setup_seconds": _seconds(fresh.setup),
    }


def face_box_agreement(cfg, images: int) -> dict[str, float]:
    """Whether faces found on the downscaled copy (`detector.detect_side`) are those found at
    full size: on the first `images` images, how often each finds a face, and the boxes' overlap;
    and the data set's framing: the image's side over the face box's (what `margin` matches)."""
    datamodule = build(cfg.data)
    datamodule.setup()  # from the cache bench_preprocessing filled
    small = datamodule.preprocessor.face.detector
    full = dataclasses.replace(small, detect_side=100_000, retry_side=None)
    found = {"full": 0, "downscaled": 0}
    overlaps, framing = [], []
    records = datamodule.image_set.records[:images]
    for record in records:
        grey = cv2.imread(str(datamodule.images_dir / record.file), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            continue
        boxes = {
            name: next(iter(detector.detect(grey)), None)
            for name, detector in (("full", full), ("downscaled", small))
        }
        for name, box in boxes.items():
            found[name] += box is not None
        if boxes["full"] is not None and boxes["downscaled"] is not None:
            overlaps.append(boxes["full"].overlap(boxes["downscaled"]))
        if boxes["downscaled"] is not None:
            framing.append(max(grey.shape) / boxes["downscaled"].side)
    return {
        "agreement_images": len(records),
        "faces_found_full_size": found["full"] / len(records),
        "faces_found_downscaled": found["downscaled"] / len(records),
        "median_box_iou": float(np.median(overlaps)) if overlaps else float("nan"),
        "image_side_over_box_side": _quantiles(framing),
        "margin": datamodule.preprocessor.face.margin,
    }


class TimedDetector:
    """A face detector that adds the seconds spent in it, over all threads, to `seconds`."""

    def __init__(self, detector) -> None:
        self.detector, self.seconds = detector, 0.0

    def detect(self, grey: np.ndarray):
        start = time.perf_counter()
        try:
            return self.detector.detect(grey)
        finally:
            self.seconds += time.perf_counter() - start


def bench_face_step(cfg, images: int) -> dict[str, float]:
    """The face step of `cfg` (the default sweep's MTCNN) cold on the first `images` images,
    from their files to the fitted arrays, on the decode threads: torch's threads divided among
    them (as fersweep preprocesses) and each with all of them (as before 2026-12-06); and the
    share of the decode threads' time spent inside the detector (the rest: reading, decoding,
    levelling, cutting, fitting)."""
    datamodule = build(cfg.data)
    records = datamodule.records()[:images]  # from the legend: nothing decoded before timing
    timed = TimedDetector(datamodule.preprocessor.face.detector)
    preprocessor = dataclasses.replace(
        datamodule.preprocessor,
        face=dataclasses.replace(datamodule.preprocessor.face, detector=timed),
    )
    load = partial(load_images, records, datamodule.source.images_dir, preprocessor, None, "")
    workers = datamodule.decode_workers
    shared = _seconds(lambda: load(workers=workers))
    detecting = timed.seconds / (shared * max(1, workers))
    with torch_threads(torch.get_num_threads() * max(1, workers)):  # divided: all to each
        each_all = _seconds(lambda: load(workers=workers))
    return {
        "images": len(records),
        "detector": type(timed.detector).__name__,
        "decode_threads": workers,
        "images_per_s": len(records) / shared,
        "all_threads_each_images_per_s": len(records) / each_all,
        "speed_up": each_all / shared,
        "detection_share": detecting,
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    points = np.percentile(values, [10, 50, 90])
    return {name: round(float(v), 3) for name, v in zip(("p10", "median", "p90"), points)}


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def bench_training(cfg, settings: BenchDefinition) -> dict[str, float]:
    """Lightning epochs on the real loader (balanced arm, on-the-fly augmentation) against a
    bare PyTorch loop over in-memory tensors, and the loader alone against the model's rate."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: EmotionDataModule = build(cfg.data)
    datamodule.setup()
    timer = EpochTimer()
    module = build(cfg.model)
    # The shared CPU's speed drifts by 10-20% over minutes: the bare loop runs before and after
    # the Lightning epochs, and their mean is the ceiling.
    bare_rates = [bare_loop_rate(cfg, datamodule, settings.bare_batches)]
    with quiet_library():  # the notices fit_network does not pass on either
        trainer = build_trainer(
            cfg.trainer,
            callbacks=[timer],
            logger=False,
            max_epochs=settings.epochs,
            enable_checkpointing=False,
            limit_val_batches=0,
            enable_progress_bar=False,
        )
        trainer.fit(module, datamodule=datamodule)
    bare_rates.append(bare_loop_rate(cfg, datamodule, settings.bare_batches))
    per_epoch = len(datamodule.train_dataset())
    lightning_rate = per_epoch / float(np.mean(timer.seconds[1:]))
    bare_rate = float(np.mean(bare_rates))
    loader_rate = loader_only_rate(datamodule, settings.loader_batches)
    return {
        "train_images_per_epoch": per_epoch,
        "lightning_images_per_s": lightning_rate,
        "bare_loop_images_per_s": bare_rate,
        "bare_loop_before_after": bare_rates,
        "lightning_over_bare": lightning_rate / bare_rate,
        "loader_images_per_s": loader_rate,
        "loader_over_model": loader_rate / bare_rate,
    }


def bare_loop_rate(cfg, datamodule: EmotionDataModule, batches: int) -> float:
    """The same network and optimizer stepping over preloaded tensors: the ceiling."""
    device = train_device(cfg)
    net = build(cfg.model.net).to(device)
    optimizer = build(cfg.optimizer)(net.parameters())
    images, labels = in_memory(datamodule, device)
    return steps_rate(net, optimizer, images, labels, datamodule.batch_size, batches, cfg)


def train_device(cfg) -> torch.device:
    """Where the trainer config trains: a GPU when it asks for one, or for `auto` with one here."""
    accelerator = cfg.trainer.accelerator
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if gpu else "cpu")


def in_memory(datamodule: EmotionDataModule, device: torch.device):
    """The training images (N x C x H x W uint8) and labels as tensors on `device`."""
    images = torch.from_numpy(datamodule.image_set.images.transpose(0, 3, 1, 2).copy())
    return images.to(device), torch.from_numpy(datamodule.image_set.labels).to(device)


@contextmanager
def deterministic_as_trainer(cfg) -> Iterator[None]:
    """torch's deterministic algorithms as the trainer turns them on (`trainer.deterministic`,
    as Lightning reads it), then as they were, and its memory unfilled as fersweep's trainers
    leave it: the same work as Lightning's step (results/2026-12-07-deterministic-cpu)."""
    without_nan_fill()
    setting = cfg.trainer.get("deterministic")
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    if setting == "warn":
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif isinstance(setting, bool):
        torch.use_deterministic_algorithms(setting)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_before)


def steps_rate(net, optimizer, images, labels, size: int, batches: int, cfg, warmup=5) -> float:
    """Images/s of `batches` optimizer steps on random batches of `size` (after `warmup`
    steps), in the trainer config's precision and deterministic setting."""
    device = images.device
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    start = 0.0
    with deterministic_as_trainer(cfg):
        for step in range(batches + warmup):
            if step == warmup:
                _sync(device)
                start = time.perf_counter()
            index = torch.randint(0, len(labels), (size,), device=device)
            with autocast:
                loss = torch.nn.functional.cross_entropy(net(images[index]).float(), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _sync(device)
    return batches * size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_only_rate(datamodule: EmotionDataModule, batches: int) -> float:
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)
    start, delivered = time.perf_counter(), 0
    for _, (images, _) in zip(range(batches), iterator):
        delivered += len(images)
    return delivered / (time.perf_counter() - start)


def bench_end_to_end(cfg) -> dict[str, float]:
    start = time.perf_counter()
    result = train(cfg, placement=RunPlacement(name="bench-end-to-end"))
    return {
        "seconds": time.perf_counter() - start,
        "test_accuracy": result.metrics["test/accuracy"],
    }
