"""``json_text``: the JSON text of jsonb values the writer stores, refusing what the server would refuse."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from triplegain.store.database import json_text

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_the_text_holds_the_same_values_and_digits_as_json(value: JsonValue) -> None:
    # Decimal: a float written with other digits would be another jsonb numeric, though the same double.
    assert json.loads(json_text(value), parse_float=Decimal) == json.loads(json.dumps(value), parse_float=Decimal)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_refused(number: float) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_text({"levels": [1.0, number]})


def test_strings_that_spell_nan_or_infinity_are_kept() -> None:
    value: dict[str, JsonValue] = {"NaN": "Infinity", "note": "-Infinity and NaN"}
    assert json.loads(json_text(value)) == value
