"""Shared fixtures: a tiny synthetic data set on disk and the real configs composed for tests."""

from __future__ import annotations

import csv
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import DictConfig

from fersweep import EMOTIONS
from fersweep.config.compose import compose_config
from fersweep.data.reframe import background

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "conf"
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "facial_expressions"
# The FER2013 weights `make install` fetches (python -m fersweep.models.weights).
WEIGHTS = PROJECT_ROOT / ".cache" / "fersweep" / "weights" / "fer2013_mini_xception.hdf5"


def synthetic_face(label: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A grey image whose bright block sits at a place that depends on the emotion: learnable."""
    image = rng.integers(0, 60, (size, size), dtype=np.uint8)
    row, col = divmod(label, 4)
    top, left = 8 + row * 28, 4 + col * 15
    image[top : top + 20, left : left + 12] = 230
    return image


def two_people_photo() -> tuple[bytes, list[tuple[float, float]]]:
    """Two of the data set's faces side by side on a textured background, as a JPEG; and
    where their centres are."""
    rng = np.random.default_rng(0)
    canvas = background(420, 760, colour=True, rng=rng)
    placed = []
    for file, left in (("Aaron_Eckhart_0001.jpg", 40), ("Aaron_Guiel_0001.jpg", 400)):
        face = cv2.imread(str(REAL_DATA / "images" / file))
        canvas[40 : 40 + face.shape[0], left : left + face.shape[1]] = face
        placed.append((left + face.shape[1] / 2, 40 + face.shape[0] / 2))
    return cv2.imencode(".jpg", canvas)[1].tobytes(), placed


def write_legend_dataset(
    root: Path, people_per_emotion: int = 4, images_per_person: int = 4, seed: int = 0
) -> list[tuple[str, str]]:
    """`root/legend.csv` + `root/images/`: every emotion, several people, LFW-style names."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, emotion in enumerate(EMOTIONS):
        for person in range(people_per_emotion):
            name = f"Person_{emotion.title()}_{person}"
            for number in range(1, images_per_person + 1):
                file = f"{name}_{number:04d}.jpg"
                cv2.imwrite(str(images / file), synthetic_face(label, rng))
                rows.append((file, emotion))
    write_legend(root / "legend.csv", rows)
    return rows


def write_legend(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user.id", "image", "emotion"])
        writer.writerows(["tester", file, emotion] for file, emotion in rows)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "facial_expressions"
    write_legend_dataset(root)
    return root


@pytest.fixture
def compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., DictConfig]:
    """The real configs, with MLflow, the cache and outputs redirected into the test's folder."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FERSWEEP_DATA", raising=False)
    monkeypatch.setenv("FERSWEEP_WEIGHTS", str(WEIGHTS))  # the install's copy, not tmp_path's

    def _compose(*overrides: str) -> DictConfig:
        return compose_config(CONFIG_DIR, [f"paths.root_dir={tmp_path}", *overrides])

    return _compose


@pytest.fixture
def tiny_run_overrides(tiny_dataset: Path) -> list[str]:
    return tiny_overrides(tiny_dataset)


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A folder and overrides shared by a module's tests that inspect one expensive run."""
    folder = tmp_path_factory.mktemp("workspace")
    write_legend_dataset(folder / "facial_expressions")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("FERSWEEP_DATA", raising=False)
        patch.setenv("FERSWEEP_WEIGHTS", str(WEIGHTS))
        yield folder, [f"paths.root_dir={folder}", *tiny_overrides(folder / "facial_expressions")]


def tiny_overrides(dataset: Path) -> list[str]:
    """Overrides for a fast CPU training run on the tiny data set."""
    return [
        f"data.root={dataset}",
        "data.download.enabled=false",
        "data.local_copies=[]",
        "data.preprocess.size=32",
        "data.batch_size=16",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "model.net.dense_units=[32]",
    ]


# --- the fault suite's tally (tests/test_reliability.py), printed at the end of the run -------

FAULT_TALLY: Counter = Counter()


def quoted(value: object) -> str:
    """A value as a Hydra override reads it, whatever its characters (spaces, commas, =)."""
    return "'" + str(value).replace("'", "\\'") + "'"


def record_faults(kind: str, count: int = 1) -> None:
    """Count cases a reliability test tried (call after its assertions passed)."""
    FAULT_TALLY[kind] += count


def pytest_terminal_summary(terminalreporter) -> None:
    if FAULT_TALLY:
        lines = ", ".join(f"{count} {kind}" for kind, count in sorted(FAULT_TALLY.items()))
        terminalreporter.write_line(f"fault suite: {lines}")


POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def new_postgres_database() -> Iterator[Callable[[], str]]:
    """Makes empty PostgreSQL databases (their URLs) on 127.0.0.1:5432, dropped after the test."""
    import psycopg

    admin = psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=5, autocommit=True)
    names: list[str] = []

    def new() -> str:
        names.append(f"fersweep_test_{uuid.uuid4().hex[:8]}")
        admin.execute(f'CREATE DATABASE "{names[-1]}"')
        return f"{POSTGRES}/{names[-1]}"

    yield new
    from fersweep.studies.storage import _OPEN

    for name in names:
        for key in [k for k in _OPEN if name in k[0]]:
            _OPEN.pop(key).engine.dispose()  # the proxies in front of it have stopped first
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def postgres_database(new_postgres_database) -> str:
    return new_postgres_database()


@pytest.fixture
def storage_proxy(new_postgres_database) -> Iterator[Callable[..., str]]:
    """Starts `fersweep grpc-proxy`'s server in this process, in front of a database; gives its
    grpc:// URL (what sweep.storage names). Stopped after the test, before its databases go."""
    from contextlib import ExitStack

    from fersweep.services.processes import free_port
    from fersweep.studies.proxy_server import StorageProxy
    from fersweep.studies.storage import _OPEN

    urls: list[str] = []
    with ExitStack() as running:

        def start(database: str, heartbeat_seconds: int = 30) -> str:
            port = free_port()
            proxy = StorageProxy(database, "127.0.0.1", port, 32, heartbeat_seconds)
            running.enter_context(proxy.running())
            urls.append(f"grpc://127.0.0.1:{port}")
            return urls[-1]

        yield start
        for key in [k for k in _OPEN if k[0] in urls]:
            _OPEN.pop(key).close()


@pytest.fixture
def sweep_overrides(tmp_path, tiny_run_overrides, monkeypatch) -> list[str]:
    """A sweep's extra overrides: its own folder, the tiny data set."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return [f"paths.root_dir={tmp_path}", *tiny_run_overrides]


def from_two_threads(get):
    """What `get()` returns in each of two threads: detectors that are not thread-safe must
    hand each thread its own instance."""
    found = {}

    def remember(name: str) -> None:
        found[name] = get()

    threads = [threading.Thread(target=remember, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found["a"], found["b"]
