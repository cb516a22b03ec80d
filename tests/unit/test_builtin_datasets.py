"""CIFAR export into class folders, without any real download."""

from __future__ import annotations

import pickle
import urllib.error

import numpy as np
import pytest
import torchvision.datasets
import torchvision.datasets.cifar as tv_cifar
from PIL import Image

from modelkit.data import builtin as bd
from modelkit.data.builtin import (
    BUILTIN_DATASETS,
    DatasetDownloadError,
    builtin_dir,
    download_cache_dir,
    is_exported,
    prepare_builtin_dataset,
)
from modelkit.data.scan import scan_dataset

CLASSES = ["airplane", "automobile", "bird"]


def make_fake(n_train_per_class=4, n_test_per_class=2, classes=CLASSES, fail=None):
    """A stand-in for torchvision.datasets.CIFAR10 with tiny in-memory data."""
    made = []

    class Fake:
        def __init__(self, root, train=True, download=False, **kw):
            if fail is not None:
                raise fail
            made.append((root, train, download))
            n = n_train_per_class if train else n_test_per_class
            rng = np.random.default_rng(1 if train else 2)
            self.targets = [i % len(classes) for i in range(n * len(classes))]
            self.data = rng.integers(0, 256, (len(self.targets), 32, 32, 3), dtype=np.uint8)
            self.classes = list(classes)

    return Fake, made


# Every test: the host probe says "reachable" without connecting; none opens a real connection.
pytestmark = pytest.mark.usefixtures("no_network")


def test_export_writes_class_folders_with_official_test_as_val(tmp_path, monkeypatch):
    fake, made = make_fake()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    calls = []
    dest = prepare_builtin_dataset(
        "cifar10", tmp_path / "cifar10", tmp_path / "cache", progress=lambda d, t: calls.append(d)
    )
    assert dest == tmp_path / "cifar10"
    assert [(train, download) for _, train, download in made] == [(True, True), (False, True)]
    assert made[0][0] == str(tmp_path / "cache")
    for cls in CLASSES:
        assert len(list((dest / "train" / cls).glob("*.png"))) == 4
        assert len(list((dest / "val" / cls).glob("*.png"))) == 2
    with Image.open(next((dest / "val" / "bird").glob("*.png"))) as im:
        assert im.mode == "RGB" and im.size == (32, 32)
    assert calls[0] == 0 and calls[-1] == 18
    assert is_exported(dest)
    index = scan_dataset(dest)
    assert index.layout == "splits" and index.classes == sorted(CLASSES)
    assert {k: len(v) for k, v in index.splits.items()} == {"train": 12, "val": 6}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "cifar10"]


def test_pixels_and_labels_survive_the_export(tmp_path, monkeypatch):
    fake, _ = make_fake()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    dest = prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache")
    ref = fake(root="x", train=True)
    for i in (0, 5, 11):
        cls = CLASSES[ref.targets[i]]
        with Image.open(dest / "train" / cls / f"{i:05d}.png") as im:
            assert np.array_equal(np.asarray(im), ref.data[i])


def test_export_is_done_once(tmp_path, monkeypatch):
    fake, made = make_fake()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    dest = prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache")
    made.clear()
    assert prepare_builtin_dataset("cifar10", dest, tmp_path / "cache") == dest
    assert made == []  # not even loaded again


def test_limit_per_class_keeps_the_val_share(tmp_path, monkeypatch):
    fake, _ = make_fake(n_train_per_class=20, n_test_per_class=4)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    dest = prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache", 10)
    counts = scan_dataset(dest).counts()
    assert counts["train"] == dict.fromkeys(sorted(CLASSES), 10)
    assert counts["val"] == dict.fromkeys(sorted(CLASSES), 2)  # 10 * 4/20
    # a different limit is a different export
    dest2 = prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache", 1)
    assert scan_dataset(dest2).counts()["val"] == dict.fromkeys(sorted(CLASSES), 1)


def test_cifar100_uses_its_own_class(tmp_path, monkeypatch):
    fake, made = make_fake(classes=["apple", "aquarium_fish", "baby"])
    monkeypatch.setattr(torchvision.datasets, "CIFAR100", fake)
    dest = prepare_builtin_dataset("cifar100", tmp_path / "c100", tmp_path / "cache", 2)
    assert sorted(p.name for p in (dest / "train").iterdir()) == ["apple", "aquarium_fish", "baby"]
    assert len(made) == 2


def test_offline_download_gives_clear_error(tmp_path, monkeypatch):
    fake, _ = make_fake(fail=urllib.error.URLError("[Errno -2] Name or service not known"))
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetDownloadError) as err:
        prepare_builtin_dataset("cifar10", tmp_path / "c", cache)
    msg = str(err.value)
    assert "Could not download CIFAR-10" in msg
    assert "cifar-10-python.tar.gz" in msg and str(cache) in msg
    assert "internet" in msg
    assert not (tmp_path / "c").exists()


def test_unreachable_host_fails_fast_without_calling_torchvision(tmp_path, monkeypatch):
    monkeypatch.setattr(bd, "_reachable", lambda url, timeout=0: False)
    fake, made = make_fake()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    with pytest.raises(DatasetDownloadError, match="cannot reach www.cs.toronto.edu"):
        prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache")
    assert made == []
    # with the archive already in the cache no network is needed, so no probe either
    (tmp_path / "cache" / "cifar-10-python.tar.gz").write_bytes(b"...")
    prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache")
    assert len(made) == 2


def test_real_torchvision_offline_path(tmp_path, monkeypatch):
    """The real CIFAR10 class, with its download failing the way it does without a network."""

    def no_internet(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_internet)
    with pytest.raises(DatasetDownloadError, match="Could not download CIFAR-10 .*URLError"):
        prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache")
    assert not (tmp_path / "c").exists()


def test_real_torchvision_reads_an_extracted_cache(tmp_path, monkeypatch):
    """An extracted cifar-10-batches-py folder in the cache is used without downloading."""
    folder = tmp_path / "cache" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]
    for name in [*names, "test_batch"]:
        labels = [0, 1, 2]
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CLASSES}, f)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # md5s of the fakes

    def no_download(*a, **k):
        raise AssertionError("must not download")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_download)
    monkeypatch.setattr(bd, "_reachable", lambda url, timeout=0: False)
    dest = prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache")
    counts = scan_dataset(dest).counts()
    assert counts == {"train": dict.fromkeys(sorted(CLASSES), 5), "val": dict.fromkeys(CLASSES, 1)}


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    fake, _ = make_fake()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)

    def progress(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache", progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_names_and_folders(tmp_path):
    assert set(BUILTIN_DATASETS) == {"cifar10", "cifar100"}
    assert builtin_dir(tmp_path, "cifar10") == tmp_path / "builtin" / "cifar10"
    assert builtin_dir(tmp_path, "cifar100", 50) == tmp_path / "builtin" / "cifar100-50-per-class"
    assert download_cache_dir(tmp_path) == tmp_path / "downloads"
    assert not is_exported(tmp_path)
    with pytest.raises(ValueError, match="unknown built-in dataset 'mnist'"):
        builtin_dir(tmp_path, "mnist")
    with pytest.raises(ValueError, match="limit_per_class"):
        prepare_builtin_dataset("cifar10", tmp_path / "c", tmp_path / "cache", 0)


def test_reachable_probe_handles_failures(monkeypatch):
    monkeypatch.undo()  # the real probe, against a port nothing listens on
    monkeypatch.setattr(bd.urllib.request, "getproxies", lambda: {})
    assert bd._reachable("http://127.0.0.1:9/x", timeout=1) is False
    monkeypatch.setattr(bd.urllib.request, "getproxies", lambda: {"https": "http://proxy:3128"})
    assert bd._reachable("https://www.cs.toronto.edu/x", timeout=1) is True
