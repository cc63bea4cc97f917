"""JSON Schema of pipeline.yaml, including the fields of the installed plugins."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from dpc_core.model import NAME_PATTERN, PipelineBase
from dpc_core.plugins import Registry, get_registry


def _tagged(models: dict[str, type[BaseModel]], kind: str) -> Any:
    # Step names are checked by the loader (they become directories and state names).
    extra: dict[str, Any] = {"name": (str, Field(
        pattern=NAME_PATTERN, title="Step name",
        description="Unique in the pipeline; letters, digits, - and _, at most 80."))} \
        if kind == "step" else {}
    variants = [
        create_model(cls.__name__, __base__=cls, __doc__=cls.__doc__,
                     # A Literal of a runtime value: fine for pydantic, opaque to mypy.
                     type=(Literal[name],  # type: ignore[arg-type]
                           Field(title=f"{kind.capitalize()} type",
                                 description=f"{name} ({cls.__module__})")),
                     **extra)
        for name, cls in sorted(models.items())
    ]
    if len(variants) == 1:
        return variants[0]
    return Annotated[Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007


def pipeline_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The schema editors use to complete and check pipeline.yaml."""
    reg = registry or get_registry()
    step = _tagged({n: s.config for n, s in reg.steps.items()}, "step")
    compute = _tagged({n: c.config for n, c in reg.computes.items()}, "compute")
    fields = PipelineBase.model_fields
    model = create_model(
        "Pipeline", __base__=PipelineBase, __doc__="A dpc pipeline (pipeline.yaml).",
        steps=(list[step], Field(  # type: ignore[valid-type]
            min_length=1, title=fields["steps"].title, description=fields["steps"].description)),
        compute=(compute | None, Field(
            default=None, title=fields["compute"].title,
            description=fields["compute"].description)),
    )
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dpc pipeline.yaml"
    channels = sorted(reg.notifiers)
    target = schema.get("$defs", {}).get("Target")
    if target and channels:
        # The model upper-cases the channel: offer the names, accept any case.
        target["properties"]["channel"]["anyOf"] = [
            {"enum": channels},
            {"type": "string", "pattern": "^(?:" + "|".join(
                "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in ch)
                for ch in channels) + ")$"},
        ]
    _written_titles(schema)
    return schema


def _human(name: str) -> str:
    """``releaseLabel`` / ``release_label`` → ``Release label``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words).capitalize()


def _written_titles(node: Any) -> None:
    """Give every property a title a person would write.

    Pydantic titles a field from its name with ``str.title()``: ``allOf`` reads
    ``Allof``. Core fields carry written titles; a plugin field that has none gets its
    name split into words instead.
    """
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict) and prop.get("title") in (
                    None, name.replace("_", " ").title()):
                prop["title"] = _human(name)
        for key, value in node.items():
            if key != "not":  # `not: {properties: ...}` states a rule, not fields
                _written_titles(value)
    elif isinstance(node, list):
        for value in node:
            _written_titles(value)
