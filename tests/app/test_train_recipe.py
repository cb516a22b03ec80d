"""AppTest: the Train page's recipe selectbox fills the form, and a two-phase run launches."""

from __future__ import annotations

from conftest import make_colour_dataset

from modelkit.runs.store import read_metrics


def _number(at, label):
    return next(w for w in at.number_input if w.label == label)


def test_few_images_recipe_fills_the_form_and_trains_in_two_phases(open_page, app_dirs):
    from studio.state import job_registry

    at = open_page("app_pages/train.py")
    assert _number(at, "Head-only epochs first (0 = off)").value == 0
    next(w for w in at.selectbox if w.label == "Recipe").set_value("few-images").run()
    assert not at.exception
    assert _number(at, "Epochs").value == 30
    assert _number(at, "Head-only epochs first (0 = off)").value == 5
    assert _number(at, "Rotation ±°").value == 15
    assert next(w for w in at.selectbox if w.label == "Optimizer").value == "adamw"

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    _number(at, "Epochs").set_value(2)
    _number(at, "Head-only epochs first (0 = off)").set_value(1)
    _number(at, "Image size (px)").set_value(32)
    _number(at, "Batch size").set_value(8)
    next(w for w in at.selectbox if w.label == "Starting weights").set_value(
        "Random (from scratch)"
    )
    next(b for b in at.button if "Launch training" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = job_registry().current
    job.join(120)
    assert [r["phase"] for r in read_metrics(job.snapshot().run_dir)] == [1, 2]


def test_auto_is_offered_first_and_says_why_it_chose_each_setting(open_page, app_dirs):
    at = open_page("app_pages/train.py")
    recipe = next(w for w in at.selectbox if w.label == "Recipe")
    assert recipe.options[0] == "auto" and recipe.value == "auto"
    assert any("auto chooses once a dataset is picked" in c.value for c in at.caption)
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    assert not at.exception
    (why,) = [e for e in at.expander if e.label == "Why these settings (auto)"]
    text = "\n".join(m.value for m in why.markdown)
    # 40 px squares: a small network from scratch, and the reason for it
    assert "**Architecture**: smallresnet" in text and "40 px" in text
    assert next(w for w in at.selectbox if w.label == "Architecture").value == "smallresnet"
    assert next(w for w in at.selectbox if w.label == "Schedule").value == "onecycle"


def test_the_page_says_where_each_starting_value_came_from(open_page, monkeypatch):
    from modelkit.models import weights

    monkeypatch.setattr(weights, "imagenet_available", lambda arch, probe=True: True)
    at = open_page("app_pages/train.py")
    next(w for w in at.selectbox if w.label == "Recipe").set_value("few-images").run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "from" in df.value.columns)
    source = dict(zip(table["setting"], table["from"], strict=True))
    assert (
        source["head_epochs"] == "recipe few-images" and source["rotation"] == "recipe few-images"
    )
    assert source["arch"] == "architecture default"
    assert source["image_size"] == "a first run on this CPU"  # no GPU here: a short first run
