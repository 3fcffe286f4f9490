"""Finding the JSON object in a model's answer (fenced, wrapped in prose, or bare)."""

from __future__ import annotations

import json
from typing import Any

_decoder = json.JSONDecoder()


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text`; ValueError when there is none."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise ValueError("no JSON object found in the answer")
