"""JSON Schema of pipeline.yaml, including the fields of the installed plugins."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from dpc_core.model import PipelineBase
from dpc_core.plugins import Registry, get_registry


def _tagged(models: dict[str, type[BaseModel]]) -> Any:
    variants = [
        create_model(cls.__name__, __base__=cls, __doc__=cls.__doc__,
                     # A Literal of a runtime value: fine for pydantic, opaque to mypy.
                     type=(Literal[name],  # type: ignore[arg-type]
                           Field(description=f"{name} ({cls.__module__})")))
        for name, cls in sorted(models.items())
    ]
    if len(variants) == 1:
        return variants[0]
    return Annotated[Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007


def pipeline_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The schema editors use to complete and check pipeline.yaml."""
    reg = registry or get_registry()
    step = _tagged({n: s.config for n, s in reg.steps.items()})
    compute = _tagged({n: c.config for n, c in reg.computes.items()})
    model = create_model(
        "Pipeline", __base__=PipelineBase, __doc__="A dpc pipeline (pipeline.yaml).",
        steps=(list[step], Field(min_length=1)),  # type: ignore[valid-type]
        compute=(compute | None, None),
    )
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dpc pipeline.yaml"
    channels = sorted(reg.notifiers)
    target = schema.get("$defs", {}).get("Target")
    if target and channels:
        target["properties"]["channel"]["enum"] = channels
    return schema
