"""Op specs parse into typed configs; mistakes name the op, the parameter and the valid choices."""

from __future__ import annotations

import pytest

from skuforge.images import OpSpecError, format_ops, parse_ops
from skuforge.images.opspec import BackgroundOp, ComposeOp, CutoutOp, InspectOp, UpscaleOp


def test_chain_with_bare_ops_and_a_main_value_parses_in_order() -> None:
    ops = parse_ops("cutout,background:white,compose")
    assert [type(o) for o in ops] == [CutoutOp, BackgroundOp, ComposeOp]
    assert ops[1].color == "white"


def test_parameters_after_an_op_belong_to_it() -> None:
    (compose,) = parse_ops("compose:fill=0.85,size=1600,format=jpeg,max_kb=500")
    assert isinstance(compose, ComposeOp)
    assert (compose.fill, compose.size, compose.format, compose.max_kb) == (0.85, 1600, "jpeg", 500)


def test_hex_colour_and_model_values_are_main_parameters() -> None:
    background, upscale, inspect = parse_ops("background:#f0f0f0,upscale:model=x4plus,inspect:amazon-main")
    assert background.color == "#f0f0f0"
    assert isinstance(upscale, UpscaleOp) and upscale.model == "x4plus"
    assert isinstance(inspect, InspectOp) and inspect.rules == "amazon-main"


def test_recipe_lists_accept_strings_and_mappings() -> None:
    ops = parse_ops(["cutout:refine=true", {"op": "compose", "fill": 0.9}])
    assert ops[0].refine is True and ops[1].fill == 0.9


def test_unknown_op_lists_the_valid_ones() -> None:
    with pytest.raises(OpSpecError) as caught:
        parse_ops("cutot,compose")
    assert "Unknown image op 'cutot'" in caught.value.message
    assert "background, compose, cutout, inspect, restyle, upscale" in caught.value.hint


def test_unknown_parameter_names_op_and_valid_parameters() -> None:
    with pytest.raises(OpSpecError) as caught:
        parse_ops("compose:fil=0.9")
    assert "Op 'compose' has no parameter 'fil'" in caught.value.message
    assert "fill" in caught.value.hint and "max_kb" in caught.value.hint


def test_out_of_range_value_names_the_parameter() -> None:
    with pytest.raises(OpSpecError) as caught:
        parse_ops("compose:fill=2")
    assert "parameter 'fill'" in caught.value.message and "'2'" in caught.value.message


def test_unknown_upscale_model_is_refused() -> None:
    with pytest.raises(OpSpecError, match="parameter 'model'"):
        parse_ops("upscale:model=x9")


def test_parameter_before_any_op_is_refused() -> None:
    with pytest.raises(OpSpecError, match="comes before any op"):
        parse_ops("fill=0.9,compose")


def test_canonical_spec_round_trips() -> None:
    ops = parse_ops("cutout,background:#eeeeee,compose:fill=0.9,format=png")
    assert parse_ops(format_ops(ops)) == ops
