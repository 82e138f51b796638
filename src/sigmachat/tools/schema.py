"""Tool parameters: pydantic models validate the arguments; strict JSON Schema is derived from them.

OpenAI strict mode wants every property listed in ``required`` and
``additionalProperties: false``; an optional parameter is a *nullable* one the model sends
as ``null``. Pydantic's schema for ``x: int = 5`` is neither (not required, a ``default``
keyword strict mode ignores), so :func:`strict_parameters` rewrites it: a field with a
default becomes ``{"type": [T, "null"]}`` with the default stated in its description,
and ``null`` is read back as "use the default" by :func:`validate_arguments`. The Agents
SDK's ``ensure_strict_json_schema`` would keep ``anyOf`` unions and ``default`` keywords,
hence this small rewrite (our schemas are flat: no ``$ref``, no nested objects).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sigmachat.tools.envelope import ToolValidationError


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown fields are errors, like the strict schema says."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PortfolioArgs(ToolArgs):
    """Arguments of a portfolio-scoped tool. ``portfolio_id`` is filled by the registry
    from the conversation when the model leaves it null."""

    portfolio_id: str | None = None


PORTFOLIO_ID_DESCRIPTION = "Portfolio id; null for the conversation's portfolio."
_DROP = ("title", "default")


def strict_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """The strict-mode JSON Schema of ``model``'s fields (see the module docstring)."""
    raw = model.model_json_schema()
    props: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        prop = copy.deepcopy(raw["properties"][name])
        optional = not field.is_required()
        if "anyOf" in prop:  # X | None -> X, nullable below
            branches = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
            if len(branches) != 1:
                raise TypeError(f"{model.__name__}.{name}: only 'X | None' unions are supported")
            prop = {**branches[0], **prop}
        for key in _DROP:
            prop.pop(key, None)
        if name == "portfolio_id" and not prop.get("description"):
            prop["description"] = PORTFOLIO_ID_DESCRIPTION
        if optional:
            prop["type"] = [prop["type"], "null"] if isinstance(prop.get("type"), str) else prop.get("type")
            if "enum" in prop and None not in prop["enum"]:
                prop["enum"] = [*prop["enum"], None]
            if field.default is not None and "Default" not in prop.get("description", ""):
                default = json.dumps(field.default)
                prop["description"] = (prop.get("description", "") + f" Default {default}.").strip()
        props[name] = prop
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def parse_arguments(arguments: dict[str, Any] | str | None) -> dict[str, Any]:
    """The call's arguments as a dict; a string must be a JSON object."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ToolValidationError(f"Arguments are not valid JSON ({exc.msg} at position {exc.pos}).") from exc
    else:
        value = arguments
    if not isinstance(value, dict):
        raise ToolValidationError(f"Arguments must be a JSON object, got {type(value).__name__}.")
    return value


def validate_arguments(model: type[ToolArgs], arguments: dict[str, Any]) -> ToolArgs:
    """Validate against ``model``; null means "the default" for optional fields.

    Raises ToolValidationError whose message names each offending field and value.
    """
    fields = model.model_fields
    cleaned = {k: v for k, v in arguments.items() if not (v is None and k in fields and not fields[k].is_required())}
    try:
        return model.model_validate(cleaned)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "arguments"
            text = err["msg"]
            if err["type"] == "extra_forbidden":
                text = f"unknown parameter (allowed: {', '.join(fields) or 'none'})"
            elif "input" in err and err["type"] != "missing":
                text += f" (got {json.dumps(err['input'], default=str)[:80]})"
            problems.append(f"{where}: {text}")
        raise ToolValidationError(
            "Invalid arguments: " + "; ".join(problems) + ".",
            details=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ],
        ) from exc
