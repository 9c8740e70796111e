"""What a recipe may say, for people and editors: a stage's parameters explained, and the recipe JSON Schema."""

from __future__ import annotations

from typing import Any

from flows.stages import STAGES

# The JSON Schema keywords that bound a value, as `refinery explain` shows them.
_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def _type_of(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    if "anyOf" in prop:
        return " | ".join(_type_of(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list[{_type_of(prop.get('items', {}))}]"
    if kind == "object" and "additionalProperties" in prop:
        return f"dict[str, {_type_of(prop['additionalProperties'] or {})}]"
    return {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "None"}.get(kind, kind)


def _bounds(prop: dict[str, Any]) -> str:
    found = [f"{op} {prop[key]}" for key, op in _BOUNDS if key in prop]
    for option in prop.get("anyOf", []):
        found += [f"{op} {option[key]}" for key, op in _BOUNDS if key in option]
    return ", ".join(found)


def explain(stage: str) -> list[dict[str, str]]:
    """One row per parameter of ``stage``: name, type, default, bounds, description."""
    schema = STAGES[stage].config_cls().model_json_schema()
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            {
                "parameter": name,
                "type": _type_of(prop),
                "default": repr(prop["default"]) if "default" in prop else "(required)",
                "bounds": _bounds(prop),
                "description": prop.get("description", ""),
            }
        )
    return rows


def recipe_json_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file: each stage a name or a one-key mapping to its parameters."""
    from pydantic.json_schema import models_json_schema

    names = list(STAGES)
    classes = [STAGES[n].config_cls() for n in names]
    refs, top = models_json_schema([(cls, "validation") for cls in classes], ref_template="#/$defs/{model}")
    items: list[dict[str, Any]] = [{"enum": names}]
    for name, cls in zip(names, classes, strict=True):
        items.append(
            {
                "type": "object",
                "properties": {name: refs[(cls, "validation")]},
                "required": [name],
                "additionalProperties": False,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Refinery recipe",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "the recipe's name, shown in run folders and reports"},
            "description": {"type": "string"},
            "seed": {
                "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                "description": "when set, every stage with a `seed` parameter not set uses it",
            },
            "stages": {"type": "array", "minItems": 1, "items": {"anyOf": items}},
        },
        "required": ["stages"],
        "additionalProperties": False,
        "$defs": top.get("$defs", {}),
    }
