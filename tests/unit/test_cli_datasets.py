"""Built-in datasets from the command line (``modelkit train cifar10``, ``--dataset digits``),
made where the app makes them, with the app's offline message; no real download."""

from __future__ import annotations

import sys
import urllib.error
from pathlib import Path

import pytest
import torchvision.datasets
from PIL import Image

from modelkit.cli.main import main
from modelkit.data import builtin as bd

sys.path.insert(0, str(Path(__file__).parent))
from test_builtin_datasets import make_fake  # noqa: E402 - the fake CIFAR those tests use


@pytest.fixture(autouse=True)
def in_empty_folder(tmp_path, monkeypatch):
    """Each test runs from an empty folder, with no data folder set, and no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELKIT_DATA_DIR", raising=False)
    monkeypatch.setattr(bd, "_reachable", lambda url, timeout=0: True)


def test_check_a_cifar_name_exports_it_under_data_and_reports_on_it(tmp_path, monkeypatch, capsys):
    fake, made = make_fake()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    assert main(["check", "cifar10"]) == 0
    out, err = capsys.readouterr()
    assert (tmp_path / "data" / "builtin" / "cifar10" / "train" / "bird").is_dir()
    assert made[0][0] == str(Path("data") / "downloads")  # the app's cache folder
    assert "built-in dataset cifar10 is in data/builtin/cifar10" in err
    assert "3 classes" in out and "val/ for val" in out
    assert main(["check", "--dataset", "cifar10"]) == 0  # the second time: nothing made again
    assert len(made) == 2


def test_train_with_dataset_flag_trains_on_the_export(tmp_path, monkeypatch, capsys, helpers):
    fake, _ = make_fake(n_train_per_class=6, n_test_per_class=2)
    monkeypatch.setattr(torchvision.datasets, "CIFAR100", fake)
    assert (
        main(["train", "--dataset", "cifar100", "--per-class", "4", *helpers.fast_train_flags]) == 0
    )
    run_dir = tmp_path / capsys.readouterr().out.strip().splitlines()[-1]
    config = (run_dir / "config.json").read_text()
    assert "builtin/cifar100-4-per-class" in config
    train = list((tmp_path / "data" / "builtin" / "cifar100-4-per-class" / "train").rglob("*.png"))
    assert len(train) == 12  # 4 per class of the 3 classes


def test_offline_gives_the_apps_message_and_exit_code_1(monkeypatch, capsys, helpers):
    fake, _ = make_fake(fail=urllib.error.URLError("[Errno -2] Name or service not known"))
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    assert main(["train", "cifar10", *helpers.fast_train_flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Could not download CIFAR-10")
    assert "cifar-10-python.tar.gz" in err and "data/downloads" in err


def test_digits_by_name_and_a_real_folder_of_that_name_wins(tmp_path, capsys):
    assert main(["check", "digits", "--per-class", "3"]) == 0
    out = capsys.readouterr().out
    assert "10 classes" in out
    assert (tmp_path / "data" / "samples" / "digits-3-per-class" / "7").is_dir()
    for cls in ("one", "two"):  # a folder the user made, named digits: used as is
        (tmp_path / "digits" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "digits" / cls / "a.png")
    assert main(["check", "digits"]) == 0
    out, err = capsys.readouterr()
    assert "2 classes" in out and "built-in" not in err


def test_a_folder_and_a_dataset_together_is_a_usage_error(capsys, helpers):
    assert main(["train", "photos", "--dataset", "digits", *helpers.fast_train_flags]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["check", "photos", "--per-class", "3"]) == 2
    assert "--per-class only applies" in capsys.readouterr().err
