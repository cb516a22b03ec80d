"""Files named by data sets and run folders from elsewhere are read through one bounded reader,
and runs with links anywhere in them are never written into: the holes a second attacker pass
found after the first fixes (issue #29). A read that would hang or fill the memory fails fast
with the file named instead."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import write_dataset

from modelkit.atomic import append_text
from modelkit.cleaning.journal import JOURNAL_NAME, Journal, JournalError
from modelkit.data.cache import ImageCache
from modelkit.data.imageio import resize_size_for
from modelkit.evaluation.evaluate import evaluate_run
from modelkit.paths import UntrustedFileError, confine_to, read_untrusted
from modelkit.runs.folder import RunFolder, RunFolderLinkError
from modelkit.runs.store import UNREADABLE, RunStore, load_run


def test_the_reader_refuses_devices_pipes_huge_and_outside_files(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(UntrustedFileError, match="device, pipe or socket"):
        read_untrusted(fifo, 1000)  # before: open() blocked for ever
    with pytest.raises(UntrustedFileError, match="device, pipe or socket"):
        read_untrusted("/dev/zero", 1000)
    sparse = tmp_path / "sparse.png"
    with open(sparse, "wb") as f:
        f.truncate(8 * 2**30)  # 8 GB on the file's word, nothing on disk
    with pytest.raises(UntrustedFileError, match="more than the"):
        read_untrusted(sparse, 2**20)
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir(), outside.mkdir()
    (outside / "x.png").write_bytes(b"secret")
    (inside / "link.png").symlink_to(outside / "x.png")
    with confine_to([inside]):
        with pytest.raises(UntrustedFileError, match="outside the folders"):
            read_untrusted(inside / "link.png", 1000)
    assert read_untrusted(outside / "x.png", 1000) == b"secret"  # unconfined: the CLI's case


def test_the_decode_cache_skips_a_pipe_dev_zero_and_an_outside_image_by_name(tmp_path):
    """Evaluate and Resume of a foreign run decode what its splits name through the cache."""
    data = write_dataset(tmp_path / "allowed" / "data", num_classes=2, per_class=2)
    good = sorted(str(p) for p in data.rglob("*.png"))
    outside = write_dataset(tmp_path / "elsewhere", num_classes=1, per_class=1)
    fifo = tmp_path / "allowed" / "pipe.png"
    os.mkfifo(fifo)
    paths = [*good, "/dev/zero", str(fifo), str(next(outside.rglob("*.png")))]
    with confine_to([tmp_path / "allowed"]):
        cache = ImageCache(paths, resize_size_for(32), workers=2)
    assert cache.valid.tolist() == [True] * len(good) + [False, False, False]
    reasons = dict(cache.errors)
    assert "device, pipe or socket" in reasons["/dev/zero"]
    assert "device, pipe or socket" in reasons[str(fifo)]
    assert "outside the folders" in reasons[paths[-1]]


def test_a_run_whose_status_is_a_pipe_is_listed_unreadable_not_waited_for(trained_run, tmp_path):
    runs = tmp_path / "runs"
    run = Path(shutil.copytree(trained_run, runs / trained_run.name))
    RunFolder(run).status.unlink()
    os.mkfifo(RunFolder(run).status)
    listed = RunStore(runs).list()  # before: blocked for ever on the pipe
    assert [r.id for r in listed] == [run.name]
    assert listed[0].state in (UNREADABLE, "interrupted", "finished", "stopped")


@pytest.mark.parametrize("entry", ["evaluation", "tensorboard"])
def test_a_run_with_a_linked_folder_is_unreadable_and_never_written_into(
    trained_run, tmp_path, entry
):
    run = Path(shutil.copytree(trained_run, tmp_path / "runs" / trained_run.name))
    target = tmp_path / "somebody-elses-folder"
    target.mkdir()
    (target / "val.json").write_text("theirs")
    shutil.rmtree(run / entry, ignore_errors=True)
    (run / entry).symlink_to(target, target_is_directory=True)
    info = load_run(run)
    assert info.state == UNREADABLE and f"{entry} is a link" in info.problem
    with pytest.raises(RunFolderLinkError, match=f"{entry} is a link"):
        evaluate_run(run, "val")
    assert (target / "val.json").read_text() == "theirs"
    assert sorted(p.name for p in target.iterdir()) == ["val.json"]


def test_appending_to_a_hard_link_is_refused(tmp_path):
    theirs = tmp_path / "their-document.txt"
    theirs.write_text("keep me\n")
    log = tmp_path / "run" / "log.txt"
    log.parent.mkdir()
    os.link(theirs, log)
    with pytest.raises(OSError, match="hard link"):
        append_text(log, "a line of the run\n")
    assert theirs.read_text() == "keep me\n"
    assert "hard link" in (RunFolder(log.parent).link_problem() or "")


def test_a_journal_that_is_a_hard_link_is_refused(tmp_path):
    data = write_dataset(tmp_path / "data", num_classes=2, per_class=2)
    theirs = tmp_path / "bashrc"
    theirs.write_text("export PATH\n")
    os.link(theirs, data / JOURNAL_NAME)
    image = next(data.rglob("*.png"))
    with pytest.raises(JournalError, match="hard link"):
        Journal(data).keep(image)
    assert theirs.read_text() == "export PATH\n"


def test_serve_answers_400_to_an_image_format_it_does_not_read(tmp_path):
    from modelkit.serving.server import BadRequest, PredictionService

    dds = b"DDS " + (124).to_bytes(4, "little") + b"\x07\x10\x00\x00" + bytes(116)
    dds = dds[:84] + b"ABCD" + dds[88:]  # an unknown FourCC: PIL's header raised
    service = PredictionService.__new__(PredictionService)  # the probe needs no model
    service.max_pixels = 50_000_000
    with pytest.raises(BadRequest) as refused:
        service.decode(dds, "x.png")
    assert refused.value.status == 400 and "not an image this server can read" in str(refused.value)


def test_a_head_too_wide_for_the_data_sets_classes_is_refused_before_it_is_built(
    tmp_path, monkeypatch
):
    """A config's head is checked without the classes (unknown then); training checks it again
    once the data set says how many, so it never trains a checkpoint predict would refuse."""
    from helpers import fast_config

    from modelkit.config import rules
    from modelkit.models import registry
    from modelkit.training.loop import Trainer, TrainingError

    data = write_dataset(tmp_path / "data", num_classes=3, per_class=4)
    features = registry.feature_width("resnet18")
    # room for features -> 64 (the config's check) but not for the 64 -> 3 classes on top
    monkeypatch.setattr(rules, "MAX_HEAD_TOTAL", features * 64 + 2 * 64)
    built = []
    real_build = registry.build_model

    def counting_build(*args, **kwargs):
        built.append(args)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(registry, "build_model", counting_build)
    cfg = fast_config(data, tmp_path / "runs", head="mlp", head_hidden=[64], arch="resnet18")
    with pytest.raises(TrainingError, match="3 classes"):
        Trainer(cfg).fit()
    assert built == []


def test_auto_reads_image_headers_of_photo_formats_only(tmp_path):
    """auto's facts read headers only; a DDS of unknown kind renamed .png raised from there."""
    from modelkit.recipes.facts import image_sides, mostly_grayscale

    good = write_dataset(tmp_path / "data", num_classes=1, per_class=2)
    dds = b"DDS " + (124).to_bytes(4, "little") + b"\x07\x10\x00\x00" + bytes(116)
    bad = tmp_path / "renamed.png"
    bad.write_bytes(dds[:84] + b"ABCD" + dds[88:])
    paths = [*map(str, good.rglob("*.png")), str(bad)]
    assert len(image_sides(paths)) == 2
    assert mostly_grayscale(paths) is False
