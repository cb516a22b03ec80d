"""``modelkit label``: suggest, assign from the terminal, accept above a bar, undo, the map and
JSON, on tiny made-up images (colour-thumbnail features: no model)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from helpers import write_dataset

from modelkit.cli.main import main


def folder(tmp_path: Path, per_class: int = 8) -> Path:
    src = write_dataset(tmp_path / "src", num_classes=3, per_class=per_class)
    data = tmp_path / "data"
    (data / "unlabelled").mkdir(parents=True)
    for p in sorted(src.rglob("*.png")):
        shutil.copy2(p, data / "unlabelled" / p.name)
    return data


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["label", *args, "--features", "pixels"])
    out, err = capsys.readouterr()
    return code, out, err


def test_suggest_prints_the_next_images_and_why(tmp_path, capsys):
    data = folder(tmp_path)
    code, out, _ = run(capsys, str(data), "--suggest", "3")
    assert code == 0
    assert "24 unlabelled" in out and "next 3 to label" in out
    asked = [line for line in out.splitlines() if line.strip().startswith(("1 ", "2 ", "3 "))]
    assert len(asked) == 3 and all("unlabelled/" in line and "(" in line for line in asked)


def test_assign_then_accept_above_then_undo(tmp_path, capsys):
    data = folder(tmp_path)
    pairs = [f"unlabelled/{c}_0{i}.png={c}" for c in ("red", "green", "blue") for i in range(4)]
    code, out, _ = run(capsys, str(data), "--assign", *pairs)
    assert code == 0 and out.count("labelled #") == 12
    assert sorted(p.name for p in (data / "red").iterdir()) == [f"red_0{i}.png" for i in range(4)]
    code, out, _ = run(capsys, str(data), "--accept-above", "0.9", "--dry-run", "--json")
    dry = json.loads(out)["suggestions"]
    assert dry["ready"] and dry["accept_count"] > 0
    assert len(list((data / "unlabelled").iterdir())) == 12  # a dry run moves nothing
    code, out, _ = run(capsys, str(data), "--accept-above", "0.9", "--json")
    result = json.loads(out)
    assert len(result["accepted"]) == dry["accept_count"]
    for entry in result["accepted"]:  # every accepted image went to its own colour
        assert Path(entry["dst"]).parts[0] == Path(entry["src"]).name.split("_")[0]
    last = result["accepted"][-1]
    code, out, _ = run(capsys, str(data), "--undo")
    assert f"undid #{last['id']}" in out
    assert (data / last["src"]).exists() and not (data / last["dst"]).exists()


def test_json_state_lists_unreadable_files_and_a_bad_assign_fails_with_its_reason(tmp_path, capsys):
    data = folder(tmp_path, 2)
    (data / "unlabelled" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    code, out, _ = run(capsys, str(data), "--json")
    state = json.loads(out)
    assert state["unlabelled"] == 7 and [Path(u["path"]).name for u in state["unreadable"]] == [
        "broken.jpg"
    ]
    code, out, err = run(
        capsys, str(data), "--assign", "nowhere.png=red", "unlabelled/red_00.png=red"
    )
    assert code == 1 and "nowhere.png" in err and "labelled #1" in out  # the rest still done
    code, _, err = run(capsys, str(data), "--assign", "unlabelled/red_01.png=../up")
    assert code == 1 and "slashes" in err
    assert not (tmp_path / "up").exists()


def test_map_is_one_offline_html_file_with_every_image(tmp_path, capsys):
    data = folder(tmp_path, 3)
    out_file = tmp_path / "map.html"
    code, out, _ = run(capsys, str(data), "--map", str(out_file), "--map-method", "pca")
    page = out_file.read_text()
    assert code == 0 and f"map: {out_file}" in out
    assert page.count("<circle") == 9
    assert not re.search(r"(src|href)=\"(https?:)?//|<link|@import", page)  # nothing fetched


def test_usage_errors(tmp_path, capsys):
    data = folder(tmp_path, 1)
    assert main(["label", str(data), "--accept-above", "1.5"]) == 2
    assert main(["label", str(data), "--assign", "no-class-given"]) == 2
    assert main(["label", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "between 0 and 1" in err and "FILE=CLASS" in err and "missing" in err
