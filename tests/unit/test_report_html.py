"""``modelkit report RUN``: one self-contained HTML file a person can open offline and trust.

One tiny real run is trained per module on generated images, with a class whose folder name is
an HTML injection attempt, a file copied under a second class (a duplicate with two labels) and
a file that does not decode (skipped by training). Tests that write into a run work on a copy.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from modelkit.cli.main import main
from modelkit.report import SECTION_IDS, write_report
from modelkit.runs.folder import RunFolder

HOSTILE = "<img src=x onerror=alert(1)>"  # `</script>` cannot be a folder name: it holds a /
HOSTILE_FILE = "<b onmouseover=alert(2)>.png"


class Sections(HTMLParser):
    """The text of each <section id=...> and every src/href of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.links: list[str] = []
        self.tags: list[str] = []
        self.attributes: set[str] = set()
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.attributes |= set(attrs)
        if tag == "section":
            self._current = attrs.get("id")
            self.text[self._current] = ""
        for key in ("src", "href", "xlink:href", "action", "data"):
            if attrs.get(key) is not None:
                self.links.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None

    def handle_data(self, data):
        if self._current:
            self.text[self._current] += data + " "


def parse(path: Path) -> Sections:
    page = Sections()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, helpers) -> Path:
    """A finished 3-class run whose data holds an injection-named class and file, a duplicate
    across two classes and a file that does not decode. Read-only: copy it to write into it."""
    from modelkit.training.loop import Trainer

    base = tmp_path_factory.mktemp("report")
    data = helpers.write_dataset(base / "data", num_classes=3, per_class=10, seed=1)
    (data / "blue").rename(data / HOSTILE)
    shutil.copy(data / HOSTILE / "blue_03.png", data / HOSTILE / HOSTILE_FILE)
    shutil.copy(data / "red" / "red_00.png", data / "green" / "dup_of_red.png")
    (data / "red" / "broken.png").write_bytes(b"this is not an image")
    result = Trainer(helpers.fast_config(data, base / "runs")).fit()
    assert result.state == "finished"
    return result.run_dir


@pytest.fixture
def run_copy(hostile_run, tmp_path) -> Path:
    return Path(shutil.copytree(hostile_run, tmp_path / hostile_run.name))


@pytest.fixture(scope="module")
def report(hostile_run, tmp_path_factory) -> Path:
    """The report of the run as it is, written next to (not into) the shared run."""
    return write_report(hostile_run, tmp_path_factory.mktemp("out") / "report.html")


def test_every_section_is_there_and_says_what_a_user_checks(report, hostile_run):
    page = parse(report)
    assert list(page.text) == list(SECTION_IDS)
    saved = json.loads((hostile_run / "evaluation" / "val.json").read_text())
    assert f"{saved['accuracy']:.1%}" in page.text["summary"]
    assert "saved evaluation of the val split" in page.text["summary"]
    splits = RunFolder(hostile_run).read_splits()
    classes = json.loads((hostile_run / "classes.json").read_text())
    data = page.text["data"]
    for i, name in enumerate(classes):  # each class with its number of images, all splits
        total = sum(1 for rows in splits.values() for _, y in rows if y == i)
        assert re.search(re.escape(name) + r"\s+(\d+\s+)*" + str(total) + r"\s", data), name
    assert "3 classes" in data
    for row in saved["per_class"]:
        assert row["class"] in page.text["per-class"]
    assert "lr" in page.text["settings"] and "image_size" in page.text["settings"]
    assert "Loss" in page.text["curves"] and "Accuracy" in page.text["curves"]
    assert "torch" in page.text["environment"] and "cpu" in page.text["environment"]


def test_data_card_names_duplicates_across_labels_and_skipped_files(report):
    data = parse(report).text["data"]
    assert "dup_of_red.png" in data and "different labels" in data
    assert "red/broken.png" in data  # named relative to the data folder, with why
    assert "1 image could not be used" in data


def test_class_and_file_names_cannot_inject_html(report):
    text = report.read_text(encoding="utf-8")
    assert HOSTILE not in text and "<b onmouseover" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    page = parse(report)
    assert "script" not in page.tags
    assert not [a for a in page.attributes if a.startswith("on")]  # no event handler at all
    assert HOSTILE in page.text["data"]  # shown as text, as the person named it
    assert "onerror" not in "".join(page.links)


def test_nothing_is_loaded_from_anywhere_but_the_file(report):
    text = report.read_text(encoding="utf-8")
    links = parse(report).links
    assert links and all(link.startswith("data:image/jpeg;base64,") for link in links)
    assert not re.search(r"https?://", text)
    assert "url(" not in text and "@import" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_samples_show_grad_cam_for_wrong_and_correct(report, hostile_run):
    page = parse(report)
    samples = page.text["samples"]
    saved = json.loads((hostile_run / "evaluation" / "val.json").read_text())
    wrong = saved["num_samples"] - sum(saved["confusion_matrix"][i][i] for i in range(3))
    assert f"Wrong ({min(wrong, 12)})" in samples
    assert "Correct, least sure first" in samples
    html = report.read_text(encoding="utf-8")
    section = html[html.index('<section id="samples">') :]
    section = section[: section.index("</section>")]
    assert section.count('alt="Grad-CAM"') == min(wrong, 12) + min(saved["num_samples"] - wrong, 12)


def test_default_path_is_the_runs_own_and_missing_parts_are_one_line(run_copy):
    shutil.rmtree(run_copy / "evaluation")
    RunFolder(run_copy).calibration.unlink(missing_ok=True)
    path = write_report(run_copy)
    assert path == RunFolder(run_copy).report and path.is_file()
    page = parse(path)
    assert "evaluated now, on cpu" in page.text["summary"]
    assert RunFolder(run_copy).evaluated_splits() == ["val"]  # saved, as the Evaluate page does
    assert "not calibrated" in page.text["calibration"]
    assert "No exports yet" in page.text["exports"]
    assert "no changes" in page.text["label-issues"]


def test_a_run_without_checkpoint_or_evaluation_still_gets_its_report(run_copy):
    shutil.rmtree(run_copy / "evaluation")
    shutil.rmtree(run_copy / "checkpoints")
    page = parse(write_report(run_copy))
    for sid in ("confusion", "per-class", "samples"):
        assert "no checkpoint to evaluate" in page.text[sid]
    assert "3 classes" in page.text["data"]


def test_export_card_and_its_parity_table_are_shown(run_copy):
    card = {
        "exports": {
            "onnx": {"file": "model.onnx", "bytes": 12345, "max_abs_diff": 1.5e-6},
            "onnx_int8": {
                "file": "model_int8.onnx",
                "max_abs_diff": 0.02,
                "parity": {
                    "summary": {"top1_agreement": 0.97, "accuracy_change": -0.004},
                    "per_class": [{"class": HOSTILE, "accuracy_change": -0.1}],
                },
            },
        }
    }
    (run_copy / "export").mkdir()
    (run_copy / "export" / "model_card.json").write_text(json.dumps(card))
    path = write_report(run_copy)
    exports = parse(path).text["exports"]
    assert "onnx_int8" in exports and "model.onnx" in exports and "1.50e-06" in exports
    assert "top1_agreement" in exports and "0.9700" in exports and "-0.1000" in exports
    assert HOSTILE in exports and HOSTILE not in path.read_text(encoding="utf-8")
    assert "No parity table" in exports  # the fp32 export has none


def test_the_cleaners_changes_are_listed(run_copy, tmp_path):
    from modelkit.cleaning.journal import Journal

    data = Path(
        shutil.copytree(
            json.loads((run_copy / "config.json").read_text())["data_dir"], tmp_path / "data"
        )
    )
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "data_dir": str(data)}))
    Journal(data).relabel(data / "red" / "red_05.png", data / "green")
    page = parse(write_report(run_copy))
    issues = page.text["label-issues"]
    assert "relabel" in issues and "red/red_05.png" in issues and "green/red_05.png" in issues
    assert "after" in issues  # made after the run started: not in its training


def test_cli_prints_the_path_and_names_a_folder_that_is_not_a_run(run_copy, tmp_path, capsys):
    out = tmp_path / "shared" / "r.html"
    assert main(["report", str(run_copy), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert out.is_file()
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not a run folder" in err and str(tmp_path) in err


def test_a_100_class_matrix_draws_only_its_non_empty_cells_and_escapes_names():
    from modelkit.report import svg

    classes = [f"<c{i}>" for i in range(100)]
    matrix = [[18 if i == j else 0 for j in range(100)] for i in range(100)]
    matrix[3][7] = 2
    out = svg.confusion_matrix(matrix, classes)
    assert "<c3>" not in out and "&lt;c3&gt; → &lt;c7&gt;: 2" in out
    assert out.count("<rect") == 1 + 101  # the frame and each non-empty cell
    assert len(out) < 100_000


def test_a_loss_spanning_orders_of_magnitude_is_drawn_on_a_log_scale():
    from modelkit.report import svg

    spiked = svg.line_chart({"val loss": [(1, 3000.0), (2, 0.1)]}, "Loss", log_y=True)
    assert "Loss (log scale)" in spiked and ">1e+03<" in spiked
    assert "log scale" not in svg.line_chart({"val loss": [(1, 1.0), (2, 0.5)]}, "Loss", log_y=True)
