"""The benchmark's table in the terminal, and its results saved as JSON and as an MLflow run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from fersweep.config.bench_schemas import BenchDefinition
from fersweep.config.values import flatten
from fersweep.evaluation.console import console
from fersweep.tracking import Tracker, artifacts


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


def _face_step_rows(face: dict) -> list[tuple[str, str, str]]:
    detector, images, threads = face["detector"], face["images"], face["decode_threads"]
    return [
        (f"{detector}: cold, {images} images (images/s)", f"{face['images_per_s']:.0f}", ""),
        (
            f"{detector}: each of {threads} decode threads with all cores (images/s)",
            f"{face['all_threads_each_images_per_s']:.0f}",
            "",
        ),
        (f"{detector}: cores shared / all to each", f"{face['speed_up']:.2f}x", ""),
        (f"{detector}: share of decode time detecting", f"{face['detection_share']:.0%}", ""),
    ]


def _finetune_rows(finetune: dict) -> list[tuple[str, str, str]]:
    rows = []
    for phase in ("frozen", "thawed"):
        row = finetune[phase]
        rows += [
            (
                f"mini_xception {phase}: Lightning / bare loop (images/s)",
                f"{row['lightning_images_per_s']:.0f} / {row['bare_loop_images_per_s']:.0f}",
                "",
            ),
            (
                f"mini_xception {phase}: Lightning / bare",
                f"{row['lightning_over_bare']:.2f}",
                ">= 0.9",
            ),
            (
                f"mini_xception {phase}: with the frozen memo (images/s)",
                f"{row['lightning_memo_images_per_s']:.0f} "
                f"({row['memo_speed_up']:.2f}x)",
                "",
            ),
        ]
    return rows


def _serving_rows(serving: dict) -> list[tuple[str, str, str]]:
    clients, rows = serving["concurrency"], []
    for key, measured in serving.items():
        if not key.startswith("workers_"):
            continue
        server = f"{key.removeprefix('workers_')} server worker(s)"
        for kind, label in (("single", "1 image"), ("batch", f"{serving['batch_images']} images")):
            row = measured[kind]
            rows += [
                (
                    f"served, {label} a request, {clients} clients, {server} (images/s)",
                    f"{row['images_per_s']:.0f}",
                    ">= 150" if kind == "single" else "",
                ),
                (
                    f"served, {label} a request, {server}: p50 / p99 (ms)",
                    f"{row['p50_ms']:.0f} / {row['p99_ms']:.0f}",
                    "",
                ),
            ]
    return rows


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


def _sweep_parts_rows(parts: dict) -> list[tuple[str, str, str]]:
    minutes = lambda seconds: f"{seconds / 60:.1f}"  # noqa: E731
    rows = [
        (f"sweep {parts['definition']}: whole (min)", minutes(parts["seconds"]), "<= 30"),
        (
            "  before the first run: face step, data set-up (min)",
            minutes(parts["before_first_run_seconds"]),
            "",
        ),
    ]
    for part, seconds in parts["by_part_seconds"].items():
        runs = [r for r in parts["runs"] if r["part"] == part]
        after = sum(r["after_training_seconds"] for r in runs)
        label = f"  {part}: {len(runs)} runs (min; after training: test, framings, recording)"
        rows.append((label, f"{minutes(seconds)} ({minutes(after)})", ""))
    rows.append(
        (
            "  outside runs: finish, registry, reports (min)",
            minutes(parts["outside_runs_seconds"]),
            "",
        )
    )
    return rows


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


def _storage_rows(storage: dict) -> list[tuple[str, str, str]]:
    rows = []
    for row in storage.values():
        label = f"{'through the proxy' if row['route'] == 'proxy' else 'direct'}, {row['workers']} workers"
        rows += [
            (f"tiny sweep trials/hour, {label}", f"{row['trials_per_hour']:.0f}", ""),
            (f"study database's peak connections, {label}", f"{row['peak_connections']}", ""),
        ]
    return rows


ROWS: dict[str, Callable[[dict], list[tuple[str, str, str]]]] = {
    "preprocessing": _preprocessing_rows,
    "face_crop": _face_rows,
    "face_step": _face_step_rows,
    "finetune": _finetune_rows,
    "serving": _serving_rows,
    "training": _training_rows,
    "end_to_end": lambda e2e: [
        ("seed protocol, balanced, 5 epochs (s)", f"{e2e['seconds']:.0f}", "< 300")
    ],
    "sweep": _sweep_rows,
    "sweep_parts": _sweep_parts_rows,
    "tracking": _tracking_rows,
    "storage": _storage_rows,
}


def save(results: dict[str, Any], root: Path, settings: BenchDefinition, tracker: Tracker) -> Path:
    """The results as JSON under `settings.results_dir` and as a run of `tracker`'s experiment."""
    folder = root / settings.results_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    with tracker.run("bench", tags={"kind": "bench"}):
        artifacts.log_dict(results, "bench/results.json")
        measured = {k: v for k, v in results.items() if k not in ("machine", "settings")}
        flat = flatten(measured)
        numbers = {k.replace(".", "/"): float(v) for k, v in flat.items() if _is_number(v)}
        artifacts.log_metrics(numbers)
    return path


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
