"""What a person reads in the terminal, or in a log file: reports whole, the data report once."""

from __future__ import annotations

from fersweep.data.legend import DataReport
from fersweep.data.report import show_data_report
from fersweep.evaluation.console import show_markdown

WIDE = (
    "| arm | macro F1 | balanced accuracy | accuracy | per run mean | per run sd | Δ | Δ low | Δ high |\n"
    "|:---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    "| original | 0.2874 | 0.3012 | 0.8011 | 0.2861 | 0.0123 | nan | nan | nan |\n"
    "| balanced | 0.2981 | 0.3344 | 0.7702 | 0.2954 | 0.0101 | 0.0107 | -0.0212 | 0.0263 |\n"
)


def test_off_a_terminal_a_report_is_printed_as_its_markdown_with_every_number_whole(capsys):
    show_markdown(f"# Against original\n\n{WIDE}")
    printed = capsys.readouterr().out
    assert WIDE in printed  # not cut to 80 columns: `bala…  0.29…` is what rich would print
    assert "-0.0212" in printed and "0.0263" in printed


def test_the_same_data_report_is_shown_in_full_once_then_named(capsys):
    report = DataReport(rows_read=123)
    report.add("unlabelled_image", "a.jpg")
    counts = {"train": {"anger": 3}, "test": {"anger": 1}}
    show_data_report(report, counts)
    first = capsys.readouterr().out
    show_data_report(report, counts)
    second = capsys.readouterr().out
    assert "unlabelled_image" in first and "unlabelled_image" not in second
    assert "data report as above: 123 rows read" in second
    assert all("train" in shown and "anger" in shown for shown in (first, second))
    changed = DataReport(rows_read=124)
    show_data_report(changed, counts)
    assert "data report: 124 rows read" in capsys.readouterr().out
