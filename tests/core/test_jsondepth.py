"""gateway.core.jsondepth: the nesting depth of JSON, measured without parsing it recursively."""

from __future__ import annotations

import json
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.jsondepth import json_depth

tricky_text = st.text(alphabet='[]{}"\\abc\n', max_size=8)
documents = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(tricky_text, kids, max_size=3),
    max_leaves=25)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(documents, st.booleans())
def test_depth_matches_the_parsed_document(value: Any, ascii_only: bool) -> None:
    """Brackets, quotes and backslashes inside strings never count."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth(text) == json_depth(text.encode()) == _depth(value)


def test_hostile_depth_is_measured_without_recursion() -> None:
    """Deeper than any recursion limit: the reason this module exists (py_ecc, imported
    under web3, sets the limit to 100,000, and json.loads then overflows the C stack)."""
    assert sys.getrecursionlimit() >= 1000
    assert json_depth(b"[" * 1_000_000 + b"]" * 1_000_000) == 1_000_000
    assert json_depth(b'{"a": "' + b"[" * 1000 + b'"}') == 1
    assert json_depth(b"[[[") == 3 and json_depth(b"") == 0  # malformed still measured
