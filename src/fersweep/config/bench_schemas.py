"""What `bench/*.yaml` may say: the sections `make bench` measures and their settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from fersweep.errors import ConfigError


@dataclass
class BenchSweep:
    definition: str = "bench"  # a file in sweeps/, without .yaml
    overrides: list[str] = field(default_factory=list)


@dataclass
class BenchTracking:
    """The same sweep through the embedded SQLite store and through a tracking server
    (conf/server.yaml, on a fresh PostgreSQL database), with each number of workers."""

    definition: str = "tiny"  # a file in sweeps/, without .yaml
    overrides: list[str] = field(default_factory=list)
    workers: list[int] = field(default_factory=lambda: [1, 2])
    server: list[str] = field(default_factory=list)  # overrides of conf/server.yaml


@dataclass
class BenchStorage:
    """The same sweep's study on PostgreSQL itself and through the gRPC storage proxy, with
    each number of workers: trials per hour and the database's connections."""

    definition: str = "tiny"  # a file in sweeps/, without .yaml
    overrides: list[str] = field(default_factory=list)
    workers: list[int] = field(default_factory=lambda: [2, 4])


BENCH_SECTIONS = (
    "preprocessing",
    "face_crop",
    "face_step",
    "finetune",
    "serving",
    "training",
    "end_to_end",
    "sweep",
    "sweep_parts",
    "tracking",
    "storage",
)


@dataclass
class BenchFaceStep:
    """The default path's face step, timed cold on the first `images` images."""

    images: int = 2048
    overrides: list[str] = field(default_factory=lambda: ["face=mtcnn"])


@dataclass
class BenchFinetune:
    """The default sweep's network fine-tuned, each phase (backbone frozen, then thawed but for
    its first stages) timed in Lightning and in a bare loop; `model.net.unfreeze_at_epoch` is
    the number of epochs a phase (the first of each warms up)."""

    overrides: list[str] = field(default_factory=lambda: ["model=mini_xception"])
    bare_batches: int = 40


@dataclass
class BenchServing:
    """A classifier trained as `overrides` say (on top of the face step's and the fine-tune's),
    served by `fersweep serve` and sent `images` test images by `concurrency` clients: one image
    a request, then `batch` images a request; with each number of server `workers`."""

    overrides: list[str] = field(default_factory=lambda: ["trainer.max_epochs=1"])
    images: int = 400
    concurrency: int = 8
    batch: int = 32
    workers: list[int] = field(default_factory=lambda: [1])  # `fersweep serve workers=N`, each


@dataclass
class BenchSweepParts:
    """A sweep (`definition` in sweeps/, with `overrides`) run whole, its time split by part."""

    definition: str = "default"
    overrides: list[str] = field(default_factory=list)


@dataclass
class BenchDefinition:
    """`bench/default.yaml`: what `make bench` measures."""

    models: list[str] = MISSING
    epochs: int = 3
    bare_batches: int = 300
    loader_batches: int = 150
    face_agreement_images: int = 500
    face_step: BenchFaceStep = field(default_factory=BenchFaceStep)
    finetune: BenchFinetune = field(default_factory=BenchFinetune)
    serving: BenchServing = field(default_factory=BenchServing)
    end_to_end: list[str] = field(default_factory=list)
    sweep: BenchSweep = field(default_factory=BenchSweep)
    sweep_parts: BenchSweepParts = field(default_factory=BenchSweepParts)
    tracking: BenchTracking = field(default_factory=BenchTracking)
    storage: BenchStorage = field(default_factory=BenchStorage)
    sections: list[str] = field(default_factory=lambda: list(BENCH_SECTIONS))
    results_dir: str = "bench/results"

    def __post_init__(self) -> None:
        unknown = set(self.sections) - set(BENCH_SECTIONS)
        if unknown:
            raise ConfigError(
                f"bench.sections: unknown {sorted(unknown)}; choose from {list(BENCH_SECTIONS)}"
            )
