"""``modelkit clean``: the ranked issues, the journal and its undo, from the command line."""

from __future__ import annotations

import json
import os

from modelkit.cleaning.journal import Journal
from modelkit.cli.main import main


def test_clean_prints_the_flipped_image_first_and_writes_csv(make_dataset, tmp_path, capsys):
    data = make_dataset(num_classes=3, per_class=10)
    os.replace(data / "red" / "red_02.png", data / "blue" / "red_02.png")
    out = tmp_path / "issues.csv"
    assert main(["clean", str(data), "--features", "pixels", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    first_row = next(line for line in text.splitlines() if line.strip().startswith("1"))
    assert "blue/red_02.png" in first_row and "red" in first_row.split()
    rows = out.read_text().splitlines()
    assert rows[0].startswith("rank,path") and "red_02.png" in rows[1]


def test_clean_json(make_dataset, capsys):
    data = make_dataset(num_classes=2, per_class=8)
    assert main(["clean", str(data), "--features", "pixels", "--json", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 16 and len(out["issues"]) == 3 and out["source"]


def test_undo_and_undo_all_from_the_command_line(make_dataset, capsys):
    data = make_dataset(num_classes=2, per_class=3)
    journal = Journal(data)
    first = journal.remove(data / "red" / "red_00.png")
    journal.relabel(data / "red" / "red_01.png", data / "green")
    assert main(["clean", str(data), "--journal"]) == 0
    assert "remove" in capsys.readouterr().out
    assert main(["clean", str(data), "--undo", str(first.id)]) == 0
    assert (data / "red" / "red_00.png").is_file()
    assert main(["clean", str(data), "--undo-all"]) == 0
    assert (data / "red" / "red_01.png").is_file() and journal.active() == []
    assert main(["clean", str(data), "--undo", "1"]) == 1
    assert "no change #1" in capsys.readouterr().err


def test_bad_options_are_usage_errors(make_dataset, capsys):
    data = make_dataset(num_classes=2, per_class=3)
    assert main(["clean", str(data), "--undo", "1", "--undo-all"]) == 2
    assert main(["clean", str(data / "missing")]) == 1
    assert "not found" in capsys.readouterr().err
