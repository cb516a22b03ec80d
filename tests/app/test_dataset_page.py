"""The Dataset page, driven through the whole app with Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

from helpers import make_zip, png_bytes
from PIL import Image
from streamlit.testing.v1 import AppTest

from modelkit.data import builtin as builtin_datasets
from studio.state import DATASET_KEY

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def png(path: Path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), color).save(path)


def tiny_dataset(root: Path) -> Path:
    for i in range(4):
        png(root / "cats" / f"cat{i}.png", (200, 10 * i, 0))
        png(root / "dogs" / f"dog{i}.png", (0, 10 * i, 200))
    (root / "cats" / "corrupt_cat.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return root


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def table_with(at: AppTest, column: str):
    """The first dataframe with ``column`` (AppTest does not expose element keys of tables)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a {column!r} column")


def open_path(at: AppTest, path) -> AppTest:
    at.text_input(key="ds_path_input").set_value(str(path))
    at.button(key="ds_open_path").click().run()
    assert not at.exception
    return at


def test_page_renders_with_every_way_to_choose(app):
    at = app
    assert at.header[0].value == "Dataset"
    assert [t.label.split(": ", 1)[-1] for t in at.tabs] == [
        "Folder",
        "Upload a zip",
        "Sample dataset",
        "CIFAR",
    ]
    keys = {b.key for b in at.button}
    assert {"ds_open_path", "ds_browse_up", "ds_browse_use", "ds_sample", "ds_builtin_go"} <= keys
    assert at.text_input(key="ds_path_input")
    assert at.file_uploader(key="ds_zip").allowed_type == [".zip"]
    assert "No dataset chosen yet" in texts(at.info)
    assert DATASET_KEY not in at.session_state


def test_sample_dataset_button_builds_digits_and_reports_ten_classes(app, tmp_path):
    at = app
    at.button(key="ds_sample").click().run()
    assert not at.exception
    path = Path(at.session_state[DATASET_KEY])
    assert path == tmp_path / "data" / "samples" / "digits"
    assert sorted(p.name for p in path.iterdir() if p.is_dir()) == [str(d) for d in range(10)]
    m = metrics(at)
    assert m["Classes"] == "10" and m["Images"] == "1,797" and m["Problems"] == "0"
    assert "No problems found" in texts(at.success)
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("image")) == 10  # one strip of thumbnails per class
    link = at.get("page_link")[0]
    assert "Train a model on this dataset" in link.proto.label
    # a rerun reuses the cached check and the finished sample
    at.run()
    assert not at.exception and metrics(at)["Classes"] == "10"


def test_typed_path_shows_the_corrupt_file_in_the_problems_table(app, tmp_path):
    root = tiny_dataset(tmp_path / "pets")
    at = open_path(app, root)
    assert at.session_state[DATASET_KEY] == str(root)
    m = metrics(at)
    assert m["Classes"] == "2" and m["Images"] == "8" and int(m["Problems"]) >= 1
    problems = table_with(at, "problem")
    assert "cats/corrupt_cat.jpg" in list(problems["file"])
    row = problems[problems["file"] == "cats/corrupt_cat.jpg"].iloc[0]
    assert row["class"] == "cats" and row["problem"]
    assert "to fix before training" in texts(at.warning)


def test_train_and_test_folders_say_val_is_drawn_from_train(app, tmp_path):
    for split, n in (("Train", 5), ("TEST", 2)):
        for i in range(n):
            png(tmp_path / "scenes" / split / "sea" / f"{i}.png", (0, 20 * i, 200))
            png(tmp_path / "scenes" / split / "street" / f"{i}.png", (90, 20 * i, 20))
    at = open_path(app, tmp_path / "scenes")
    captions = texts(at.caption)
    assert "Train/ for train and val (a stratified 20% of each class" in captions
    assert "TEST/ for test" in captions


def test_duplicates_across_classes_are_listed(app, tmp_path):
    root = tiny_dataset(tmp_path / "pets")
    (root / "dogs" / "dup.png").write_bytes((root / "cats" / "cat1.png").read_bytes())
    at = open_path(app, root)
    dups = table_with(at, "cross_class")
    assert len(dups) == 1 and bool(dups["cross_class"].iloc[0])
    assert "dogs/dup.png" in dups["paths"].iloc[0]


def test_path_outside_allowed_roots_is_refused(app, tmp_path):
    at = open_path(app, "/etc")
    assert "outside the folders this app may open" in texts(at.error)
    assert DATASET_KEY not in at.session_state
    at = open_path(at, tmp_path / "pets" / ".." / ".." / "elsewhere")
    assert "outside the folders" in texts(at.error)


def test_missing_path_and_unusable_folder_show_errors(app, tmp_path):
    at = open_path(app, tmp_path / "nope")
    assert "folder not found" in texts(at.error)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "readme.txt").write_text("no classes here")
    at = open_path(at, tmp_path / "flat")
    assert "cannot be used as a dataset yet" in texts(at.error)
    assert "no class folders" in texts(at.error)
    # the page keeps working: the sample still loads afterwards
    at.button(key="ds_sample").click().run()
    assert not at.exception and metrics(at)["Classes"] == "10"


def test_browser_walks_folders_and_uses_one(app, tmp_path):
    tiny_dataset(tmp_path / "photos" / "pets")
    at = app.run()
    labels = {b.label: b for b in at.button if (b.key or "").startswith("ds_browse_")}
    assert ":material/folder: photos" in labels
    labels[":material/folder: photos"].click().run()
    assert at.session_state["ds_browse_dir"] == str(tmp_path / "photos")
    assert at.text_input(key="ds_path_input").value == str(tmp_path / "photos")
    pets = next(b for b in at.button if b.label == ":material/folder: pets")
    pets.click().run()
    assert "class folders" in texts(at.markdown)
    at.button(key="ds_browse_use").click().run()
    assert at.session_state[DATASET_KEY] == str(tmp_path / "photos" / "pets")
    assert metrics(at)["Classes"] == "2"
    at.button(key="ds_browse_up").click().run()
    at.button(key="ds_browse_up").click().run()
    assert at.session_state["ds_browse_dir"] == str(tmp_path)
    assert at.button(key="ds_browse_up").disabled  # the allowed root is the top


def test_zip_upload_is_extracted_and_used(app, tmp_path):
    data = make_zip(
        {
            f"flowers/{c}/{i}.png": png_bytes((i * 40, k * 90, 9), 9)
            for k, c in enumerate("ab")
            for i in range(3)
        }
    )
    at = app
    at.file_uploader(key="ds_zip").set_value(("flowers.zip", data, "application/zip")).run()
    assert not at.exception
    chosen = Path(at.session_state[DATASET_KEY])
    assert chosen == tmp_path / "data" / "uploads" / "flowers" / "flowers"
    assert "Unpacked flowers.zip" in texts(at.success)
    assert metrics(at)["Classes"] == "2" and metrics(at)["Images"] == "6"
    at.run()  # not extracted a second time
    uploads = tmp_path / "data" / "uploads"
    assert sorted(p.name for p in uploads.iterdir() if not p.name.startswith(".")) == ["flowers"]
    # the same zip uploaded again (a new upload of the same bytes) reuses its folder
    at.file_uploader(key="ds_zip").set_value(("again.zip", data, "application/zip")).run()
    assert "was uploaded before" in texts(at.success)
    assert sorted(p.name for p in uploads.iterdir() if not p.name.startswith(".")) == ["flowers"]


def test_unsafe_zip_upload_shows_the_reason(app, tmp_path):
    data = make_zip({"../../escape.png": png_bytes((1, 2, 3), 9)})
    at = app
    at.file_uploader(key="ds_zip").set_value(("evil.zip", data, "application/zip"))
    at.run()
    assert not at.exception
    assert "'../../escape.png'" in texts(at.error)
    assert DATASET_KEY not in at.session_state
    assert not (tmp_path / "escape.png").exists()
    at.file_uploader(key="ds_zip").set_value(("notes.zip", b"plain text", "application/zip"))
    at.run()
    assert "not a readable zip" in texts(at.error)


def test_cifar_offline_shows_clear_error_and_app_keeps_working(app, monkeypatch):
    monkeypatch.setattr(builtin_datasets, "_reachable", lambda url, timeout=0: False)
    at = app
    at.button(key="ds_builtin_go").click().run()
    assert not at.exception
    err = texts(at.error)
    assert "Could not download CIFAR-10" in err and "cifar-10-python.tar.gz" in err
    at.button(key="ds_sample").click().run()
    assert not at.exception and metrics(at)["Classes"] == "10"


def test_cifar_button_exports_and_uses_the_dataset(app, tmp_path, monkeypatch):
    import numpy as np
    import torchvision.datasets

    class FakeCIFAR10:
        def __init__(self, root, train=True, download=False):
            n = 6 if train else 2
            self.targets = [i % 2 for i in range(n)]
            self.data = np.full((n, 32, 32, 3), 7, np.uint8)
            self.data[:, 0, 0, 0] = np.arange(n) + (0 if train else 100)  # all different
            self.classes = ["cat", "dog"]

    monkeypatch.setattr(builtin_datasets, "_reachable", lambda url, timeout=0: True)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    at = app
    at.selectbox(key="ds_builtin_limit").set_value(100)
    at.button(key="ds_builtin_go").click().run()
    assert not at.exception
    assert at.session_state[DATASET_KEY] == str(
        tmp_path / "data" / "builtin" / "cifar10-100-per-class"
    )
    m = metrics(at)
    assert m["Classes"] == "2" and m["Images"] == "8"
    at.run()
    assert at.button(key="ds_builtin_go").label == "Use CIFAR-10"  # exported: no download
