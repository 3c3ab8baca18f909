"""The ESC paper's models are points of the family, reproduced exactly (authors' code counts)."""

from __future__ import annotations

import pytest

from srnas.space import build_model, count_params, get_preset
from srnas.space.complexity import count_flops

# Parameter counts of the authors' code (shared kernel counted once).
REFERENCE_PARAMS = {
    ("esc-light", 2): 603_600, ("esc-light", 3): 612_255, ("esc-light", 4): 624_372,
    ("esc", 2): 946_728, ("esc", 3): 955_383, ("esc", 4): 967_500,
}
# fvcore multiply-adds at the 320x180 input (x4, 1280x720 output), from the paper / code.
REFERENCE_FLOPS_X4 = {"esc-light": 91.04e9, "esc": 149.19e9}


@pytest.mark.parametrize(("preset", "scale"), sorted(REFERENCE_PARAMS))
def test_parameter_counts_match_the_authors_code(preset: str, scale: int) -> None:
    assert count_params(build_model(get_preset(preset, scale))) == REFERENCE_PARAMS[
        (preset, scale)]


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(REFERENCE_FLOPS_X4))
def test_multiply_adds_match_the_paper_within_one_percent(preset: str) -> None:
    flops = count_flops(build_model(get_preset(preset, 4)), (180, 320))
    assert flops == pytest.approx(REFERENCE_FLOPS_X4[preset], rel=0.01)


def test_tiny_preset_is_tiny_and_milk_light_is_in_esc_light_class() -> None:
    assert count_params(build_model(get_preset("tiny"))) < 50_000
    light = count_params(build_model(get_preset("esc-light")))
    milk = count_params(build_model(get_preset("milk-light")))
    assert 0.8 * light < milk < 1.2 * light
