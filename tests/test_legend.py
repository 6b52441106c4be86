"""Reading legend.csv as it really is: every kind of mess is handled and counted, none silent."""

from pathlib import Path

import pytest

from fersweep.data.legend import identity_from_filename, read_legend
from fersweep.errors import DataError
from tests.conftest import write_legend


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    for name in ["A_0001.jpg", "B_0001.jpg", "C_0001.jpg", "D_0001.jpg", "E_0001.jpg", "F_01.jpg"]:
        (images / name).write_bytes(b"not decoded here")
    rows = [
        ("A_0001.jpg", "HAPPINESS"),  # odd case
        ("B_0001.jpg", "neutral"),
        ("B_0001.jpg", "Neutral"),  # exact duplicate (after case folding)
        ("C_0001.jpg", "surprise"),
        ("C_0001.jpg", "sadness"),  # conflicting duplicate: both excluded
        ("D_0001.jpg", "boredom"),  # unknown label
        ("Missing_0001.jpg", "anger"),  # no such file
        ("../etc/passwd", "anger"),  # outside the data root
        ("/etc/passwd", "fear"),  # absolute path
    ]
    write_legend(tmp_path / "legend.csv", rows)
    with (tmp_path / "legend.csv").open("a") as handle:
        handle.write("tester,F_01.jpg\n")  # malformed: a column short
    return tmp_path / "legend.csv", images


def test_usable_rows_become_records_with_case_folded_labels(messy):
    records, _ = read_legend(*messy)
    assert {(r.file, r.emotion) for r in records} == {
        ("A_0001.jpg", "happiness"),
        ("B_0001.jpg", "neutral"),
    }


def test_every_kind_of_problem_is_counted(messy):
    _, report = read_legend(*messy)
    assert report.rows_read == 10
    assert dict(report.counts) == {
        "exact_duplicate": 1,
        "conflicting_duplicate": 1,
        "unknown_label": 1,
        "missing_file": 1,
        "unsafe_path": 2,
        "malformed_row": 1,
        "unlabelled_image": 3,  # D (unknown label), E (no row), F (malformed row)
        "label_case_folded": 2,  # HAPPINESS, Neutral: kept, and counted
    }


def test_problems_name_the_row_or_file(messy):
    _, report = read_legend(*messy)
    assert "C_0001.jpg" in report.examples["conflicting_duplicate"][0]
    assert "boredom" in report.examples["unknown_label"][0]
    assert "Missing_0001.jpg" in report.examples["missing_file"][0]
    assert any("../etc/passwd" in e for e in report.examples["unsafe_path"])


def test_a_legend_without_its_columns_is_refused_naming_the_file(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "legend.csv").write_text("A_0001.jpg,happiness\n")
    with pytest.raises(DataError, match="legend.csv.*lacks column"):
        read_legend(tmp_path / "legend.csv", tmp_path / "images")


@pytest.mark.parametrize(
    "file, identity",
    [
        ("George_W_Bush_0012.jpg", "George_W_Bush"),
        ("HrithikRoshan_45.jpg", "HrithikRoshan"),
        ("facial-expressions_2868588k.jpg", "facial-expressions"),
        ("Avinash_30.jpg", "Avinash"),
    ],
)
def test_identity_is_the_file_name_without_its_number(file, identity):
    assert identity_from_filename(file) == identity
