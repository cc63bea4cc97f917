"""Errors a user can cause. The CLI prints them without a traceback and exits 2."""

from __future__ import annotations

from dataclasses import dataclass


class DpcError(Exception):
    """Base class of every error dpc reports to a user (exit code 2, no traceback)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one input file, with its location."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class ValidationFailed(DpcError):
    """One or more input files are invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PluginError(DpcError):
    """Plugins cannot be loaded together (duplicate names, incompatible API)."""


class UnknownPipeline(DpcError):
    """A pipeline named by the user is not defined or registered."""


class DependencyCycle(DpcError):
    """Registering a pipeline would close a dependency cycle."""

    def __init__(self, path: list[str]) -> None:
        self.path = path
        super().__init__("dependency cycle: " + " -> ".join(path))


class BadEvent(DpcError):
    """An input event is not a Step Functions execution status change."""


class ConditionTooDeep(DpcError):
    """A trigger condition nests blocks deeper than the engine accepts (docs/triggers.md rule 8)."""
