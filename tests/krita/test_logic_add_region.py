"""The docker's Add region button: the new layer's name is one the region reader takes."""

from __future__ import annotations

import pytest
from dreamwire_krita.logic.prompt_regions import (
    LayerInfo,
    region_layer_name,
    region_layers,
    region_prompt,
)
from dreamwire_krita.logic.regions import PlanError


@pytest.mark.parametrize(
    ("typed", "name", "prompt"),
    [
        ("a red barn", "region: a red barn", "a red barn"),
        ("  a red\n barn  ", "region: a red barn", "a red barn"),  # one line, as layer names
        ("Region: a red barn", "region: a red barn", "a red barn"),  # prefix not doubled
        ("", "region: ", ""),
        ("   ", "region: ", ""),
    ],
)
def test_region_layer_names_round_trip_through_the_reader(typed, name, prompt):
    assert region_layer_name(typed) == name
    assert region_prompt(name) == prompt


def test_an_unnamed_new_region_asks_for_its_prompt_when_used():
    layers = [LayerInfo("{a}", region_layer_name(""), True)]
    with pytest.raises(PlanError, match="has no prompt"):
        region_layers(layers)
    layers = [LayerInfo("{a}", region_layer_name("a red barn"), True)]
    assert [r.prompt for r in region_layers(layers)] == ["a red barn"]
