"""Classify keeps its images and answers when the person opens another page and comes back (the
upload box forgets its files then), until they clear them; the kept images stay bounded."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from studio.state import KeptImages
from tests.app.conftest import no_exception

pytestmark = pytest.mark.slow

CLASSIFY, DATASET = "app_pages/classify.py", "app_pages/dataset.py"


def files_in_results(at) -> list[str]:
    for df in at.dataframe:
        if "top label" in df.value.columns:
            return list(df.value["file"])
    return []


def upload(at, *named) -> None:
    at.file_uploader(key="classify_files").set_value(
        [(name, data, "image/png") for name, data in named]
    )
    at.run()
    no_exception(at)


def away_and_back(at) -> None:
    at.switch_page(DATASET).run()
    no_exception(at)
    at.switch_page(CLASSIFY).run()
    no_exception(at)


def test_results_survive_a_page_switch_until_cleared(open_page, run_dir, png):
    at = open_page(CLASSIFY)
    upload(at, ("red.png", png((220, 40, 40))), ("blue.png", png((40, 60, 220))))
    assert files_in_results(at) == ["red.png", "blue.png"]
    answers = [m.value for m in at.markdown if " · " in str(m.value)]

    away_and_back(at)
    assert not at.file_uploader(key="classify_files").value  # the box forgot its files...
    assert files_in_results(at) == ["red.png", "blue.png"]  # ...the page did not
    assert [m.value for m in at.markdown if " · " in str(m.value)] == answers
    assert "kept from before" in "\n".join(c.value for c in at.caption)

    upload(at, ("green.png", png((40, 190, 60))))  # a new drop adds to what was kept
    assert files_in_results(at) == ["red.png", "blue.png", "green.png"]
    at.file_uploader(key="classify_files").set_value([]).run()  # taken out of the box again
    no_exception(at)
    assert files_in_results(at) == ["red.png", "blue.png"]

    at.button(key="classify_clear").click().run()
    no_exception(at)
    assert files_in_results(at) == []
    assert "Drag and drop" in "\n".join(c.value for c in at.caption)
    away_and_back(at)
    assert files_in_results(at) == []


def upload_like(file_id: str, size: int) -> SimpleNamespace:
    data = bytes(size)
    return SimpleNamespace(file_id=file_id, name=f"{file_id}.png", getvalue=lambda: data)


def test_kept_images_are_bounded_newest_first_and_never_taken_twice():
    kept = KeptImages(max_images=3, max_bytes=10_000)
    box = [upload_like(str(i), 1000) for i in range(5)]
    kept.add(box)
    assert [k.file_id for k in kept.items] == ["2", "3", "4"] and kept.dropped == 2
    kept.add(box)  # the same box on the next rerun: nothing is taken again, nothing churns
    assert [k.file_id for k in kept.items] == ["2", "3", "4"] and kept.dropped == 2
    kept.add([upload_like("big", 9_500)])
    assert [k.file_id for k in kept.items] == ["big"]  # within max_bytes again
    assert [k.file_id for k in kept.pending(("model a",))] == ["big"]
    kept.items[0].prediction = object()
    assert kept.pending(("model a",)) == []  # answered once
    assert len(kept.pending(("model b",))) == 1  # another model answers again
    kept.clear()
    kept.add(box)
    assert kept.items == []  # still in the box after a Clear: not taken back
