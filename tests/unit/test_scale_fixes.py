"""What the scale work changed keeps its behaviour: class-name checks refuse exactly the control
characters they always did."""

from __future__ import annotations

from modelkit.names import class_name_problem, classes_problem


def test_class_names_with_a_control_character_are_refused_and_no_other():
    for code in range(0x3100):
        name = f"a{chr(code)}b"
        refused = class_name_problem(name) is not None
        assert refused == (code < 32 or code == 127), hex(code)
    assert "contains control characters" in classes_problem(["cat", "d\x1bog"], "classes.json")
    assert classes_problem(["cat", "猫", "chien d'été"], "classes.json") is None
