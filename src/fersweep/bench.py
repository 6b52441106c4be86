"""`make bench`: speed where it matters, measured on the real data, printed, saved, tracked."""

from __future__ import annotations

import dataclasses
import json
import platform
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import OmegaConf
from rich.table import Table

from fersweep.config import build, compose_config, compose_definition
from fersweep.console import console
from fersweep.data.cache import load_images
from fersweep.data.datamodule import EmotionDataModule
from fersweep.definitions import BenchDefinition, BenchTracking
from fersweep.errors import exits_cleanly
from fersweep.sweep import Sweep, run_sweep
from fersweep.tracking import Tracker, artifacts
from fersweep.tracking.server import TrackingServer, drop_database, free_port
from fersweep.train import RunPlacement, train


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (the training loop only, validation excluded)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def run_bench(root: Path, settings: BenchDefinition, overrides: list[str]) -> dict[str, Any]:
    config_dir = root / "conf"
    compose = lambda *extra: compose_config(config_dir, [*overrides, *extra])  # noqa: E731
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {**dataclasses.asdict(settings), "overrides": overrides},
    }
    sections = settings.sections
    if "preprocessing" in sections:
        results["preprocessing"] = bench_preprocessing(compose("balancing=balanced"))
    if "face_crop" in sections:
        face_cfg = compose("balancing=balanced", "face=haar")
        results["face_crop"] = {
            **bench_preprocessing(face_cfg),
            **face_box_agreement(face_cfg, settings.face_agreement_images),
        }
    if "training" in sections:
        results["training"] = {
            model: bench_training(compose(f"model={model}", "balancing=balanced"), settings)
            for model in settings.models
        }
    if "end_to_end" in sections:
        results["end_to_end"] = bench_end_to_end(
            compose(*settings.end_to_end, "tracking.experiment=fersweep-bench")
        )
    if "sweep" in sections:
        results["sweep"] = bench_sweep(config_dir, settings, overrides)
    if "tracking" in sections:
        results["tracking"] = bench_tracking(config_dir, settings.tracking, overrides)
    return results


def machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


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
    trainer = build(
        cfg.trainer,
        callbacks=[timer],
        logger=False,
        max_epochs=settings.epochs,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
    )
    # The shared CPU's speed drifts by 10-20% over minutes: the bare loop runs before and after
    # the Lightning epochs, and their mean is the ceiling.
    bare_rates = [bare_loop_rate(cfg, datamodule, settings.bare_batches)]
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
    device = torch.device("cuda" if cfg.trainer.precision.startswith("bf16") else "cpu")
    net = build(cfg.model.net).to(device)
    optimizer = build(cfg.optimizer)(net.parameters())
    images = torch.from_numpy(datamodule.image_set.images.transpose(0, 3, 1, 2).copy()).to(device)
    labels = torch.from_numpy(datamodule.image_set.labels).to(device)
    size = datamodule.batch_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    start = 0.0
    for step in range(batches + 5):
        if step == 5:
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


def bench_sweep(
    config_dir: Path, settings: BenchDefinition, overrides: list[str]
) -> dict[str, float]:
    """Finished (complete + pruned) trials per hour of a fixed small sweep, pruned and not."""
    rates = {}
    for label, pruner in (("pruning", None), ("no_pruning", "optuna.pruners.NopPruner")):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        sweep = Sweep.compose(
            config_dir,
            [
                f"sweeps@sweep={settings.sweep.definition}",
                f"sweep.name=bench-{label}-{stamp}",
                *overrides,
                *settings.sweep.overrides,
                "tracking.experiment=fersweep-bench",
                "trainer.enable_progress_bar=false",
            ],
        )
        if pruner:
            # Replaced, not merged: the default pruner's settings would not fit this one.
            sweep.definition = dataclasses.replace(sweep.definition, pruner={"_target_": pruner})
        start = time.perf_counter()
        run_sweep(sweep)
        hours = (time.perf_counter() - start) / 3600
        study = sweep.open_study("original")
        finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
        pruned = sum(t.state.name == "PRUNED" for t in study.trials)
        rates[label] = {
            "trials": len(finished),
            "pruned": pruned,
            "trials_per_hour": len(finished) / hours,
        }
    return rates


def bench_tracking(
    config_dir: Path, settings: BenchTracking, overrides: list[str]
) -> dict[str, dict[str, float]]:
    """Trials per hour of one sweep with each number of workers, through the embedded SQLite
    store and through a tracking server (PostgreSQL backend, served artifacts), measured in
    turns (embedded, server, server, embedded, ...) so a drift in the machine's speed is shared.
    The study storage is the same local SQLite file for both; only the MLflow store differs."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    database = f"fersweep_bench_{stamp.replace('-', '_')}"
    server_cfg = compose_config(
        config_dir,
        [
            f"server.port={free_port()}",
            f"server.backend_store=${{postgres}}/{database}",
            *settings.server,
        ],
        config_name="server",
    )
    rates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fersweep-bench-") as folder:
        server_cfg.server.artifacts_destination = f"{folder}/served"
        server: TrackingServer = build(server_cfg.server)
        stores = {"embedded": f"sqlite:///{folder}/mlflow.db", "server": server.url}
        turns = [
            (store, workers)
            for index, workers in enumerate(settings.workers)
            for store in (("embedded", "server") if index % 2 == 0 else ("server", "embedded"))
        ]
        with server.running(Path(folder) / "server.log"):
            for store, workers in turns:
                sweep = Sweep.compose(
                    config_dir,
                    [
                        f"sweeps@sweep={settings.definition}",
                        f"sweep.name=bench-tracking-{store}-{workers}-{stamp}",
                        f"sweep.workers={workers}",
                        *overrides,
                        *settings.overrides,
                        f"tracking.tracking_uri={stores[store]}",
                        f"tracking.artifact_root={folder}/artifacts",
                        "tracking.experiment=fersweep-bench-tracking",
                        "trainer.enable_progress_bar=false",
                    ],
                )
                sweep.definition = dataclasses.replace(
                    sweep.definition, pruner={"_target_": "optuna.pruners.NopPruner"}
                )
                rates[f"{store}_{workers}_workers"] = {
                    "store": store,
                    "workers": workers,
                    **_timed_sweep(sweep),
                }
        drop_database(server.backend_store)
    for workers in settings.workers:
        embedded, through = rates[f"embedded_{workers}_workers"], rates[f"server_{workers}_workers"]
        rates[f"server_cost_{workers}_workers"] = {
            "workers": workers,
            "throughput_cost": 1 - through["trials_per_hour"] / embedded["trials_per_hour"],
        }
    return rates


def _timed_sweep(sweep: Sweep) -> dict[str, float]:
    """Trials per hour while the arms' trials ran (first start to last end, every arm), and
    the whole sweep's wall time (with its finish: best retrained, registered, compared)."""
    start = time.perf_counter()
    run_sweep(sweep)
    seconds = time.perf_counter() - start
    trials = [t for arm in sweep.definition.arms for t in sweep.open_study(arm).trials]
    finished = [t for t in trials if t.state.is_finished() and t.state.name != "FAIL"]
    span = max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)
    return {
        "trials": len(finished),
        "failed": sum(t.state.name == "FAIL" for t in trials),
        "trials_per_hour": len(finished) / (span.total_seconds() / 3600),
        "sweep_seconds": seconds,
    }


def show(results: dict[str, Any]) -> None:
    table = Table(title=f"fersweep bench — {results['machine']}")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for section, rows in ROWS.items():
        if section in results:
            for row in rows(results[section]):
                table.add_row(*row)
    console.print(table)


def _preprocessing_rows(pre: dict) -> list[tuple[str, str, str]]:
    return [
        ("preprocess cold, from JPEG (images/s)", f"{pre['cold_images_per_s']:.0f}", ""),
        ("preprocess warm, from cache (images/s)", f"{pre['warm_images_per_s']:.0f}", ""),
        ("warm / cold", f"{pre['warm_over_cold']:.0f}x", ">= 50x"),
        ("whole data set-up, warm (s)", f"{pre['warm_setup_seconds']:.2f}", ""),
    ]


def _face_rows(face: dict) -> list[tuple[str, str, str]]:
    framing = face["image_side_over_box_side"]
    quantiles = ", ".join(f"{framing.get(q, float('nan')):.2f}" for q in ("p10", "median", "p90"))
    return [
        ("face crop: preprocess cold (images/s)", f"{face['cold_images_per_s']:.0f}", ""),
        ("face crop: cold pass over the data (s)", f"{face['cold_seconds']:.0f}", "< 60"),
        ("face crop: warm, from cache (images/s)", f"{face['warm_images_per_s']:.0f}", ""),
        (
            f"faces found, full size / downscaled ({face['agreement_images']} images)",
            f"{face['faces_found_full_size']:.1%} / {face['faces_found_downscaled']:.1%}",
            "",
        ),
        ("face boxes, median IoU full vs downscaled", f"{face['median_box_iou']:.2f}", ""),
        (
            "image side / face box side (p10, median, p90)",
            quantiles,
            f"margin {face['margin']}",
        ),
    ]


def _training_rows(training: dict) -> list[tuple[str, str, str]]:
    rows = []
    for model, row in training.items():
        rows += [
            (
                f"{model}: Lightning, balanced (images/s)",
                f"{row['lightning_images_per_s']:.0f}",
                "",
            ),
            (f"{model}: bare loop (images/s)", f"{row['bare_loop_images_per_s']:.0f}", ""),
            (f"{model}: Lightning / bare", f"{row['lightning_over_bare']:.2f}", ">= 0.9"),
            (f"{model}: loader alone (images/s)", f"{row['loader_images_per_s']:.0f}", ""),
            (f"{model}: loader / model", f"{row['loader_over_model']:.1f}x", ">= 3x"),
        ]
    return rows


def _sweep_rows(sweep: dict) -> list[tuple[str, str, str]]:
    return [
        (
            f"sweep trials/hour ({label})",
            f"{row['trials_per_hour']:.0f}",
            f"{row['pruned']} pruned of {row['trials']}",
        )
        for label, row in sweep.items()
    ]


def _tracking_rows(tracking: dict) -> list[tuple[str, str, str]]:
    rows = []
    for row in tracking.values():
        workers = f"{row['workers']} worker{'s' if row['workers'] > 1 else ''}"
        if "throughput_cost" in row:
            label = f"throughput lost to the tracking server, {workers}"
            rows.append((label, f"{row['throughput_cost']:.1%}", "<= 10%"))
        else:
            label = f"tiny sweep trials/hour, {row['store']} store, {workers}"
            rows.append((label, f"{row['trials_per_hour']:.0f}", ""))
    return rows


ROWS: dict[str, Callable[[dict], list[tuple[str, str, str]]]] = {
    "preprocessing": _preprocessing_rows,
    "face_crop": _face_rows,
    "training": _training_rows,
    "end_to_end": lambda e2e: [
        ("seed protocol, balanced, 5 epochs (s)", f"{e2e['seconds']:.0f}", "< 300")
    ],
    "sweep": _sweep_rows,
    "tracking": _tracking_rows,
}


def save(results: dict[str, Any], root: Path, settings: BenchDefinition, tracker: Tracker) -> Path:
    folder = root / settings.results_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    tracker.experiment = "fersweep-bench"
    with tracker.run("bench", tags={"kind": "bench"}):
        artifacts.log_dict(results, "bench/results.json")
        measured = {k: v for k, v in results.items() if k not in ("machine", "settings")}
        flat = artifacts.flatten(measured)
        numbers = {k.replace(".", "/"): float(v) for k, v in flat.items() if _is_number(v)}
        artifacts.log_metrics(numbers)
    return path


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@exits_cleanly
def main(root: Path, argv: list[str]) -> None:
    cfg, overrides = compose_definition(root / "conf", "bench", argv)
    settings: BenchDefinition = OmegaConf.to_object(cfg.bench)
    # Built first: MLflow exports the URI each measurement's store sets as MLFLOW_TRACKING_URI,
    # which the tracking config would otherwise read afterwards.
    tracker = build(cfg.tracking)
    results = run_bench(root, settings, overrides)
    show(results)
    console.print(f"results: {save(results, root, settings, tracker)}")
