"""Parameter values: numbers, gradients over layers, filter lists (docs/guides/merging.md, Recipes)."""
import pytest

from kinmerge.core.params import check_value, gradient_at, value_at


def test_gradient_interpolates_between_anchors():
    g = [0.0, 0.5, 0.3, 0.7, 1.0]
    assert gradient_at(g, 0.0) == 0.0 and gradient_at(g, 1.0) == 1.0
    assert gradient_at(g, 0.25) == 0.5  # exactly on the 2nd anchor
    assert gradient_at(g, 0.375) == pytest.approx(0.4)  # halfway between 0.5 and 0.3
    assert gradient_at([2.0], 0.7) == 2.0


def test_filter_list_first_match_wins():
    v = [{"filter": "self_attn", "value": [0, 1]}, {"filter": "mlp", "value": 0.2},
         {"value": 0.5}]
    assert value_at(v, "model.layers.3.self_attn.q_proj.weight", 0.5) == 0.5
    assert value_at(v, "model.layers.3.self_attn.q_proj.weight", 1.0) == 1.0
    assert value_at(v, "model.layers.3.mlp.up_proj.weight", 0.5) == 0.2
    assert value_at(v, "model.norm.weight", 0.0) == 0.5
    assert value_at([{"filter": "mlp", "value": 1}], "lm_head.weight", 0) is None
    assert value_at([{"filter": "*", "value": 3}], "lm_head.weight", 0) == 3.0


def test_bools_pass_through():
    assert value_at(True, "x", 0) is True


@pytest.mark.parametrize("value,ok", [
    (1, True), (0.5, True), ([0, 1], True), ([{"filter": "a", "value": [0, 1]}], True),
    ("x", False), ([], False), ([{"filtr": "a", "value": 1}], False),
    ([{"filter": "a", "value": [{"value": 1}]}], False), (True, False),
])
def test_check_value(value, ok):
    assert (check_value(value) is None) == ok
