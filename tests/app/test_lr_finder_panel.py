"""AppTest: the Train page's learning-rate finder shows its plot and fills the Learning rate."""

from __future__ import annotations

from conftest import make_colour_dataset


def test_lr_finder_suggestion_goes_into_the_form(open_page, app_dirs):
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    at = open_page("app_pages/train.py")
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    next(w for w in at.number_input if w.label == "Image size (px)").set_value(32)
    next(w for w in at.number_input if w.label == "Batch size").set_value(8)
    next(w for w in at.selectbox if w.label == "Architecture").set_value("smallresnet")
    next(w for w in at.selectbox if w.label == "Starting weights").set_value(
        "Random (from scratch)"
    )
    next(b for b in at.button if "Find a learning rate" in b.label).click().run(timeout=180)
    assert not at.exception and not at.error, [e.value for e in at.error]
    result = at.session_state["lr_finder_result"]
    assert result.lrs and result.suggestion
    assert at.get("plotly_chart")
    take = next(b for b in at.button if b.label.startswith("Use ") and b.key == "lr_take_steepest")
    take.click().run()
    lr = next(w for w in at.number_input if w.label == "Learning rate").value
    assert lr == at.session_state["lr_finder_suggestion"]
    assert lr == min(max(float(f"{result.suggestion:.3g}"), 1e-6), 10.0)
