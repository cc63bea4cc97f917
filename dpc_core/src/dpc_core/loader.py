"""Reading pipeline.yaml files: YAML with positions, validation, errors users can act on.

Every problem is reported as ``FILE:LINE:COLUMN: field: message``, all problems of a
file at once.
"""

from __future__ import annotations

import os
import re
import stat
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dpc_core.errors import Problem, ValidationFailed
from dpc_core.model import (
    NAME_PATTERN,
    NAME_RULE,
    Block,
    Pipeline,
    PipelineBase,
    Ref,
    ScheduleSpec,
    Trigger,
)
from dpc_core.plugins import Registry, get_registry
from dpc_core.types import StepConfig

STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
#: Numbers YAML 1.1 reads in base 60 when written with colons (``12:30`` is 750).
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
#: Collection tags, and what each needs: on a scalar (``trigger: !!map every-day``) they
#: are an error, never an empty collection.
_COLLECTION_TAGS = {"tag:yaml.org,2002:map": "a mapping", "tag:yaml.org,2002:set": "a mapping",
                    "tag:yaml.org,2002:omap": "a list", "tag:yaml.org,2002:pairs": "a list",
                    "tag:yaml.org,2002:seq": "a list"}
#: What an explicit scalar tag accepts (for the message when the value does not fit).
_SCALAR_FORMS = {"bool": "true or false", "int": "an integer such as 42",
                 "float": "a number such as 1.5",
                 "timestamp": "a date such as 2026-11-26 (or a date and time)",
                 "null": "null or nothing", "binary": "base64 text"}
#: Where libyaml and PyYAML disagree (found by tests/test_loader_fast.py): a tab inside a
#: plain scalar, `?` inside a flow collection (`[a?]`: PyYAML ends the scalar there), a BOM
#: or a Unicode line break (counted differently in positions). A file with any of them
#: takes the limited loader.
_DIVERGE = re.compile("[\t\ufeff\x85\u2028\u2029]")
_FLOW = re.compile(r"[\[{]")
#: A bare `!` tag (`k: !`, `[!, x]`) or a tag running into a flow indicator (`[!!str, x]`:
#: PyYAML reads the tag `!!str,`): libyaml and PyYAML parse them differently.
_ODD_TAG = re.compile(r"(?:^|(?<=[\s\[{,:?-]))!(?:\S*[,\[\]{}]|(?=\s|$))")
#: Tags of plain scalars by their text, as the resolver's regexes decide them (the same few
#: words fill every file: keys, statuses, `true`).
_PLAIN_TAGS: dict[str, str] = {}

#: libyaml's loader (PyYAML's wheels on PyPI have it), or None: then every file takes the
#: limited pure-Python loader.
_CLoader: Any = None
_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
if _CSafeLoader is not None:
    class _FastLoader(_CSafeLoader):  # type: ignore[misc]
        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            # PyYAML's Resolver.resolve, remembered for plain scalars (SafeLoader has no
            # path resolvers); libyaml calls it for every node.
            if kind is yaml.ScalarNode:
                if implicit == (False, False):
                    # A bare `!` with no value: PyYAML's parser resolves it as a plain
                    # scalar (null), libyaml as quoted text; take PyYAML's answer.
                    implicit = (True, False)
                if not implicit[0]:
                    return STR_TAG
                tag = _PLAIN_TAGS.get(value)
                if tag is None:
                    tag = super().resolve(kind, value, implicit)
                    if len(_PLAIN_TAGS) < 10_000 and len(value) < 100:
                        _PLAIN_TAGS[value] = tag
                return tag
            return super().resolve(kind, value, implicit)

    _CLoader = _FastLoader

PIPELINE_FILE = "pipeline.yaml"
Path_ = tuple[str | int, ...]


@dataclass
class Positions:
    """Where each value (and each mapping key) of a YAML document starts, 1-based."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    #: Values written as ``12:30`` that YAML 1.1 read as base-60 numbers, as written.
    sexagesimal: dict[Path_, str] = field(default_factory=dict)

    def of(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """Position of ``path``, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if not key and p in self.keys:
                return self.keys[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


class _DuplicateKey(Exception):
    def __init__(self, path: Path_, line: int, col: int, first: int) -> None:
        self.path, self.line, self.col, self.first = path, line, col, first


#: Hard limits on what one pipeline.yaml may hold. Real files are a few kilobytes; the
#: limits stop a hostile or broken file (a billion-laughs alias bomb, 1,000 nested `[`,
#: a 10 MB paste) from exhausting time, memory or the Python stack, and each says which
#: limit was hit and where.
MAX_FILE_BYTES = 64 * 1024
MAX_DEPTH = 100
MAX_ALIASES = 100
MAX_VALUES = 100_000
MAX_STRING = 10_000


class YamlLimitError(yaml.MarkedYAMLError):
    """A pipeline.yaml exceeds one of the loader's hard limits (size, depth, aliases...)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with hard limits enforced while the node graph is composed.

    The composer is the only recursive stage of PyYAML and the place where an alias
    can make a node contain itself, so nesting depth, alias count, recursion through an
    alias, the size a document expands to, and scalar length are all checked here,
    before anything recursive (building, pydantic) sees the document.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        # Expanded size (values, counting what aliases repeat) of every completed node;
        # a node that is not in here yet is still being composed.
        self._sizes: dict[int, int] = {}

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead over a whole line of `[[[[...`, and its look-ahead costs
        # grow with the flow depth: stop at the limit here, before the composer sees it.
        if self.flow_level >= MAX_DEPTH:
            raise YamlLimitError(f"values nested more than {MAX_DEPTH} levels deep",
                                 self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases (*name) in one file; "
                                     "write the values out", event.start_mark)
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise YamlLimitError(f"alias *{event.anchor} refers to a collection that "
                                     "contains it (a value cannot include itself)",
                                     event.start_mark)
            aliased = super().compose_node(parent, index)
            assert aliased is not None  # an alias event always composes to its node
            return aliased
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlLimitError(f"values nested more than {MAX_DEPTH} levels deep",
                                 event.start_mark)
        try:
            composed = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        assert composed is not None  # a scalar, sequence or mapping event was next
        node: yaml.Node = composed
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_STRING:
                raise YamlLimitError(f"a value of {len(node.value):,} characters; at most "
                                     f"{MAX_STRING:,} are allowed", node.start_mark)
            size = 1
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes[id(n)] for n in node.value)
        else:
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        if size > MAX_VALUES:
            raise YamlLimitError(f"this value expands to more than {MAX_VALUES:,} values "
                                 "(aliases repeat what they refer to)", node.start_mark)
        self._sizes[id(node)] = size
        return node


def _tag_name(tag: str) -> str:
    """``!!bool`` for ``tag:yaml.org,2002:bool`` (as the user wrote it), else the tag."""
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix):] if tag.startswith(prefix) else tag


def _collection_tag_error(n: yaml.ScalarNode) -> yaml.constructor.ConstructorError:
    """The error for a collection tag on a scalar (``trigger: !!map every-day``)."""
    return yaml.constructor.ConstructorError(
        None, None, f"{_tag_name(n.tag)} needs {_COLLECTION_TAGS[n.tag]}, but the value is "
        f"the text {_short(n.value)}; remove the tag or write {_COLLECTION_TAGS[n.tag]}",
        n.start_mark)


def _mark_at(text: str, index: int) -> yaml.Mark:
    """The PyYAML mark (0-based line and column) of character ``index`` of ``text``."""
    line = text.count("\n", 0, index)
    column = index - (text.rfind("\n", 0, index) + 1)
    return yaml.Mark("<file>", index, line, column, "", 0)


class _Unusual(Exception):
    """The fast path met what only the limited loader judges (an alias, a limit)."""


def _fast_parse(text: str) -> tuple[Any, Positions]:
    """:func:`parse_yaml` for the usual file, ~9x faster (0.21 vs 1.88 ms for a generated
    pipeline): libyaml composes the nodes (in C; it refuses nesting deeper than 1,000
    itself) and every node is visited once.

    Anything the limits are about (an alias or merge key, depth, size, a long string)
    and every error raise, and :func:`parse_yaml` reads the file again with the limited
    pure-Python loader, whose errors and positions users see.
    """
    assert _CLoader is not None
    if _DIVERGE.search(text) or ("?" in text and _FLOW.search(text)) or (
            "!" in text and _ODD_TAG.search(text)):
        raise _Unusual
    loader = _CLoader(text)
    try:
        root = loader.get_single_node()
        pos = Positions()
        if root is None:
            return None, pos
        seen: set[int] = set()
        values, keys = pos.values, pos.keys
        construct = loader.construct_object

        def build(n: yaml.Node, path: Path_) -> Any:
            if id(n) in seen or len(path) >= MAX_DEPTH or len(seen) >= MAX_VALUES:
                raise _Unusual
            seen.add(id(n))
            mark = n.start_mark
            values[path] = (mark.line + 1, mark.column + 1)
            if isinstance(n, yaml.MappingNode):
                out: dict[Any, Any] = {}
                for k_node, v_node in n.value:
                    if (not isinstance(k_node, yaml.ScalarNode) or k_node.tag == MERGE_TAG
                            or id(k_node) in seen or len(k_node.value) > MAX_STRING):
                        raise _Unusual
                    seen.add(id(k_node))
                    k: str | int = (k_node.value if k_node.tag == STR_TAG
                                    else construct(k_node))
                    if k in out or not isinstance(k, str | int):  # (floats, nulls: rare)
                        raise _Unusual
                    kmark = k_node.start_mark
                    keys[(*path, k)] = (kmark.line + 1, kmark.column + 1)
                    if (n.flow_style and isinstance(v_node, yaml.ScalarNode)
                            and v_node.start_mark.index == v_node.end_mark.index):
                        raise _Unusual  # `{k: }`: the empty value's column differs
                    out[k] = build(v_node, (*path, k))
                return out
            if isinstance(n, yaml.SequenceNode):
                return [build(item, (*path, i)) for i, item in enumerate(n.value)]
            if len(n.value) > MAX_STRING or n.tag in _COLLECTION_TAGS:
                raise _Unusual  # the limited loader says why
            if n.tag == STR_TAG:
                return n.value
            if n.tag in _NUMBER_TAGS and ":" in n.value:
                pos.sexagesimal[path] = n.value
            return construct(n)

        return build(root, ()), pos
    finally:
        loader.dispose()


def parse_yaml(text: str) -> tuple[Any, Positions]:
    """Parse one YAML document keeping the position of every node.

    Raises yaml.YAMLError (:class:`YamlLimitError` when a hard limit is exceeded).
    """
    if len(text) > MAX_FILE_BYTES:
        raise YamlLimitError(f"the file is longer than {MAX_FILE_BYTES // 1024} KiB "
                             f"({len(text):,} characters), the most a pipeline.yaml may be",
                             _mark_at(text, MAX_FILE_BYTES))
    if _CLoader is not None:
        try:
            return _fast_parse(text)
        except Exception:  # refused or unusual: the limited loader says why
            pass
    return _limited_parse(text)


def _limited_parse(text: str) -> tuple[Any, Positions]:
    """:func:`parse_yaml` by PyYAML's pure-Python loader with the hard limits enforced."""
    try:
        loader = _LimitedLoader(text)
    except yaml.reader.ReaderError as exc:
        # The reader rejects a control character before any mark exists: say where it is.
        raise YamlLimitError(f"control character U+{exc.character:04X} is not allowed; remove "
                             "it, or write it as an escape (\\x..) inside double quotes",
                             _mark_at(text, exc.position)) from None
    try:
        node = loader.get_single_node()
        pos = Positions()
        if node is None:
            return None, pos

        def construct(n: yaml.Node) -> Any:
            if isinstance(n, yaml.ScalarNode) and n.tag in _COLLECTION_TAGS:
                raise _collection_tag_error(n)
            try:
                return loader.construct_object(n, deep=True)
            except (ValueError, OverflowError, KeyError, IndexError, AttributeError,
                    TypeError) as exc:
                # SafeConstructor lets Python's errors out (`2026-02-30` as a date,
                # `!!int 0xfz`, `!!bool maybe`, an empty `!!int`): they are YAML problems
                # at that value like any other.
                kind = str(n.tag).rsplit(":", 1)[-1]
                form = _SCALAR_FORMS.get(kind)
                detail = f": {exc}" if isinstance(exc, ValueError | OverflowError) else ""
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot read {_short(n.value)} as {_tag_name(str(n.tag))}"
                    f"{detail}" + (f"; {_tag_name(str(n.tag))} takes {form}"
                                   if form and not detail else ""),
                    n.start_mark) from None

        def build(n: yaml.Node, path: Path_) -> Any:
            pos.values[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
            if isinstance(n, yaml.MappingNode):
                loader.flatten_mapping(n)
                out: dict[Any, Any] = {}
                for k_node, v_node in n.value:
                    k = construct(k_node)
                    if not isinstance(k, str | int | float | bool) and k is not None:
                        k = str(k)
                    if k in out:
                        first = pos.keys[(*path, k)][0]
                        raise _DuplicateKey((*path, k), k_node.start_mark.line + 1,
                                            k_node.start_mark.column + 1, first)
                    pos.keys[(*path, k)] = (k_node.start_mark.line + 1,
                                            k_node.start_mark.column + 1)
                    out[k] = build(v_node, (*path, k))
                return out
            if isinstance(n, yaml.SequenceNode):
                return [build(item, (*path, i)) for i, item in enumerate(n.value)]
            if n.tag in _NUMBER_TAGS and ":" in n.value:
                pos.sexagesimal[path] = n.value
            return construct(n)

        return build(node, ()), pos
    finally:
        loader.dispose()


_NAME = re.compile(NAME_PATTERN)


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message must stay one readable line."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def _cut(message: str, limit: int = 300) -> str:
    """A plugin's message, cut to ``limit`` characters (it may quote a huge value)."""
    return message if len(message) <= limit else message[:limit - 3] + "..."


def _display(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            # An unknown key can be thousands of characters long.
            out += ("." if out else "") + (text if len(text) <= 40 else text[:37] + "...")
    return out


def _strip_tags(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    # Discriminated unions add their tag ('ref' / 'block') to the location.
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if part in ("ref", "block") and i > 0 and isinstance(loc[i - 1], int):
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def _unwrap(tp: Any, part: str | int) -> Any:
    """The type found at ``part`` inside type ``tp`` (for 'allowed fields' hints)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if part in ("ref", "block"):
                return Ref if part == "ref" else Block
            if len(args) == 1:
                tp = args[0]
                continue
            return None
        break
    if isinstance(tp, str):
        tp = {"Block": Block}.get(tp)
    if isinstance(part, int):
        origin = typing.get_origin(tp)
        return typing.get_args(tp)[0] if origin in (list, tuple) else None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, f in tp.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
    return None


def _allowed(root: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp, part)
        if tp is None:
            return []
    while True:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return []
            tp = args[0]
        elif origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        else:
            break
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _problems_from(
    exc: ValidationError, model: type[BaseModel], prefix: Path_, file: str, pos: Positions
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        raw_loc = tuple(err["loc"])
        loc = _strip_tags(raw_loc)
        full = (*prefix, *loc)
        msg = err["msg"]
        for lead in ("Value error, ", "Assertion failed, "):
            if msg.startswith(lead):
                msg = msg[len(lead):]
        etype = err["type"]
        value = err.get("input")
        field = _display(full)
        if etype == "condition_too_deep":
            # The model names the block that is too deep: point at it, not at the top (the
            # field stays `trigger.executions`: 33 times `allOf[0]` helps nobody).
            full = (*full, *err.get("ctx", {}).get("path", []))
        if etype == "extra_forbidden":
            allowed = _allowed(model, raw_loc[:-1])
            line, col = pos.of(full, key=True)
            msg = "unknown field" + _unknown_field_hint(str(loc[-1]), allowed, full)
        elif etype == "missing":
            line, col = pos.of(full[:-1])
            msg = "required field is missing"
        else:
            # A rule about a whole mapping (model validator) is reported on the line of
            # its key, where the reader looks for it, not on the mapping's first entry.
            at_key = isinstance(value, dict) and full in pos.keys
            line, col = pos.of(full, key=at_key)
            if etype in ("dict_type", "model_type", "model_attributes_type"):
                allowed = _allowed(model, raw_loc)
                msg = "must be a mapping of fields" + (
                    f" ({', '.join(allowed)})" if allowed else "")
            elif etype == "string_pattern_mismatch" and err.get("ctx", {}).get(
                    "pattern") == NAME_PATTERN:
                msg = NAME_RULE
            elif etype == "too_short" and err.get("ctx", {}).get("min_length") == 1:
                msg = "must list at least one step" if full == ("steps",) else (
                    "must not be empty")
            if etype not in ("value_error", "assertion_error", "condition_too_deep"):
                msg = f"{msg} (got {_short(value)})"
            written = pos.sexagesimal.get(full)
            if written is not None:
                msg += (f"; YAML 1.1 reads the unquoted {_short(written, 20)} as the base-60 "
                        f"number {_short(value, 20)}: write it quoted: \"{written[:20]}\"")
        problems.append(Problem(file, line, col, field, msg))
    return problems


def _kind_of(value: object) -> str:
    """How a user would name the YAML type of ``value``."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _unknown_field_hint(key: str, allowed: list[str], full: Path_) -> str:
    """Suggestions after "unknown field": the near miss, then the allowed fields."""
    import difflib

    hint = ""
    home = _misplaced(key, full[:-1])
    if home:
        hint = f" here ({key!r} belongs under {home})"
    else:
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.7)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    return hint + (f"; allowed: {', '.join(allowed)}" if allowed else "")


def _field_names(model: type[BaseModel]) -> set[str]:
    return {f.alias or n for n, f in model.model_fields.items()}


def _misplaced(key: str, parent: Path_) -> str:
    """Where a key written at the wrong depth belongs (``trigger.schedule:``), or ``""``."""
    if parent == () and key in _field_names(Trigger):
        return "trigger:"
    if parent in ((), ("trigger",)):
        if key in _field_names(ScheduleSpec):
            return "trigger.schedule:"
        if key in _field_names(Block):
            return "trigger.executions:"
    return ""


def validate_document(
    data: Any, pos: Positions, file: str, registry: Registry | None = None,
    project_dir: str = "",
) -> Pipeline:
    """Validate parsed YAML against the core model and each plugin's config model."""
    reg = registry or get_registry()
    problems: list[Problem] = []
    if data is None:
        raise ValidationFailed([Problem(file, 1, 1, "", "file is empty; a pipeline needs at "
                                        "least `name` and `steps`")])
    if not isinstance(data, dict):
        line, col = pos.of(())
        raise ValidationFailed([Problem(file, line, col, "", "a pipeline.yaml must be a mapping "
                                        f"of fields (name: ..., steps: ...), got "
                                        f"{_kind_of(data)}")])
    base: PipelineBase | None = None
    try:
        base = PipelineBase.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, PipelineBase, (), file, pos))

    steps: list[StepConfig] = []
    raw_steps = data.get("steps")
    if isinstance(raw_steps, list):
        first_line: dict[str, int] = {}
        for i, raw in enumerate(raw_steps):
            if not isinstance(raw, dict):
                continue  # reported by the core model
            step = _validate_plugin_item(raw, ("steps", i), "step", reg, file, pos, problems)
            name = raw.get("name")
            if isinstance(name, str) and not _NAME.fullmatch(name):
                # A step name becomes a directory and a Step Functions state name: `a/b`
                # must fail here, not at run time.
                line, col = pos.of(("steps", i, "name"))
                problems.append(Problem(file, line, col, f"steps[{i}].name",
                                        f"{NAME_RULE} (got {_short(name)})"))
            elif isinstance(name, str):
                if name in first_line:
                    line, col = pos.of(("steps", i, "name"))
                    problems.append(Problem(file, line, col, f"steps[{i}].name",
                                            f"duplicate step name {name!r} (first used on "
                                            f"line {first_line[name]}); step names must be unique"))
                else:
                    first_line[name] = pos.of(("steps", i, "name"))[0]
            if step is not None:
                steps.append(step)  # type: ignore[arg-type]

    raw_compute = data.get("compute")
    compute: BaseModel | None = None
    if raw_compute is None:
        compute = reg.computes["local"].config(type="local") if "local" in reg.computes else None
    elif isinstance(raw_compute, dict):
        compute = _validate_plugin_item(raw_compute, ("compute",), "compute", reg, file, pos,
                                        problems)

    notifications = data.get("notifications")
    if isinstance(notifications, dict) and isinstance(notifications.get("targets"), list):
        for i, target in enumerate(notifications["targets"]):
            if not isinstance(target, dict) or not isinstance(target.get("channel"), str):
                continue
            channel = target["channel"].upper()
            where = ("notifications", "targets", i, "channel")
            if channel not in reg.notifiers:
                line, col = pos.of(where)
                problems.append(Problem(file, line, col, _display(where),
                                        _unknown_msg("channel", channel, reg)))
                continue
            check = reg.notifiers[channel].validate_address
            addresses = target.get("addresses")
            if check is not None and isinstance(addresses, list):
                for j, address in enumerate(addresses):
                    try:
                        check(str(address))
                    except ValueError as exc:
                        at = ("notifications", "targets", i, "addresses", j)
                        line, col = pos.of(at)
                        problems.append(Problem(file, line, col, _display(at),
                                                _cut(str(exc))))

    if problems or base is None or compute is None:
        problems.sort(key=lambda p: (p.line, p.column))
        raise ValidationFailed(problems or [Problem(file, 1, 1, "", "invalid pipeline")])
    return Pipeline(
        name=base.name, account=base.account, description=base.description,
        owner=base.owner_team, contact=base.owner_contact, deadline=base.deadline,
        tags=base.tags, trigger=base.trigger, steps=steps, compute=compute,
        notifications=base.notifications, source=file, project_dir=project_dir,
    )


def _unknown_msg(kind: str, name: str, reg: Registry) -> str:
    # Installed but unusable (two plugins claim it, or its plugin was skipped): the
    # plugin manager's message names the distributions and the fix.
    blocked = reg.unavailable(kind, name)
    if blocked:
        return blocked
    tables: dict[str, dict[str, Any]] = {
        "step": reg.steps, "compute": reg.computes, "channel": reg.notifiers}
    table = tables[kind]
    what = {"step": "step type", "compute": "compute type", "channel": "notification channel"}
    import difflib

    provider = reg.left_out_provider(kind, name)
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.7)
    msg = f"unknown {what[kind]} {_short(name)}"
    if close and not provider:
        msg += f" (did you mean {close[0]!r}?)"
    msg += f"; installed: {', '.join(sorted(table)) or 'none'}"
    if provider:
        msg += f"; {reg.missing_hint(kind, name)}"
    if reg.failures:
        # The type may belong to a plugin that is installed but broken: say so.
        broken = ", ".join(sorted({f.dist for f in reg.failures}))
        msg += f"; plugins that failed to load (see `dpc plugins list`): {broken}"
    return msg


def _validate_plugin_item(
    raw: dict[str, Any], where: Path_, kind: str, reg: Registry, file: str, pos: Positions,
    problems: list[Problem],
) -> BaseModel | None:
    type_name = raw.get("type")
    table: dict[str, Any] = reg.steps if kind == "step" else reg.computes
    if not isinstance(type_name, str):
        at = (*where, "type") if "type" in raw else where
        line, col = pos.of(at)
        problems.append(Problem(file, line, col, _display((*where, "type")),
                                f"required field is missing or not a string; installed {kind} "
                                f"types: {', '.join(sorted(table)) or 'none'}"))
        return None
    if type_name not in table:
        line, col = pos.of((*where, "type"))
        problems.append(Problem(file, line, col, _display((*where, "type")),
                                _unknown_msg(kind, type_name, reg)))
        return None
    model = table[type_name].config
    try:
        return model.model_validate(raw)  # type: ignore[no-any-return]
    except ValidationError as exc:
        problems.extend(_problems_from(exc, model, where, file, pos))
        return None


@dataclass
class LoadedPipeline:
    """A validated pipeline with the positions of its source, for later cross-file checks."""

    pipeline: Pipeline
    positions: Positions


class _NotRegular(Exception):
    """A FIFO, device, socket... named pipeline.yaml (reading it could block forever)."""


def _read_regular(path: Path) -> bytes:
    """At most :data:`MAX_FILE_BYTES` + 1 bytes of ``path``, a regular file.

    Opened without blocking (opening a FIFO would wait for a writer) and checked on the
    open descriptor (no race with a rename): anything but a regular file raises
    :class:`_NotRegular` naming what it is.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                     (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                     (stat.S_ISDIR, "a directory"))
            raise _NotRegular(next((k for test, k in kinds if test(mode)), "not a file"))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            # Never read more than the limit (a 10 GB file is refused just as fast).
            return fh.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)


def load_file(path: Path, registry: Registry | None = None) -> LoadedPipeline:
    """Read and validate one pipeline.yaml. Raises :class:`ValidationFailed`."""
    file = str(path)
    try:
        raw = _read_regular(path)
    except OSError as exc:
        raise ValidationFailed([Problem(file, 1, 1, "", f"cannot read file: {exc}")]) from None
    except _NotRegular as exc:
        raise ValidationFailed([Problem(file, 1, 1, "", f"not a regular file ({exc}); a "
                                        "pipeline.yaml must be a file")]) from None
    if len(raw) > MAX_FILE_BYTES:
        line = raw.count(b"\n", 0, MAX_FILE_BYTES) + 1
        col = MAX_FILE_BYTES - raw.rfind(b"\n", 0, MAX_FILE_BYTES)
        raise ValidationFailed([Problem(
            file, line, col, "", f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, the "
            "most a pipeline.yaml may be; the limit is crossed here")])
    try:
        # Universal newlines, as text-mode reading would give (a lone CR ends a line).
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise ValidationFailed([Problem(
            file, line, col, "", f"not UTF-8 text: byte {raw[exc.start]:#04x} cannot be "
            "decoded; save the file as UTF-8")]) from None
    try:
        data, pos = parse_yaml(text)
    except _DuplicateKey as dup:
        key = dup.path[-1]
        raise ValidationFailed([Problem(
            file, dup.line, dup.col, _display(dup.path),
            f"duplicate key {_short(key)} (first on line {dup.first}); a key may appear only once "
            "in a mapping")]) from None
    except yaml.YAMLError as exc:
        raise ValidationFailed([_yaml_problem(file, exc)]) from None
    pipeline = validate_document(data, pos, file, registry, project_dir=str(path.parent))
    return LoadedPipeline(pipeline, pos)


def _yaml_problem(file: str, exc: yaml.YAMLError) -> Problem:
    """PyYAML's error as a Problem that says, in words, what is wrong and what to do (its
    own text, "expected <block end>, but found '?'", is about the parser, not the file)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, YamlLimitError):
        return Problem(file, line, col, "", what)
    ctx = getattr(exc, "context", None) or ""
    ctx_mark = getattr(exc, "context_mark", None)
    since = ctx_mark.line + 1 if ctx_mark is not None else None
    humane = _humane_yaml(what, ctx, since)
    if humane is not None:
        return Problem(file, line, col, "", f"invalid YAML: {humane}")
    msg = f"invalid YAML: {what}"
    if ctx:
        # "while parsing a flow sequence" is only useful with where that sequence began.
        msg += f" ({ctx}{f' that starts on line {since}' if since else ''})"
    return Problem(file, line, col, "", msg)


#: PyYAML's token names, as a person reads them.
_TOKENS = {"'<block mapping start>'": "a key", "'<scalar>'": "text",
           "'<block entry>'": "a list item '-'", "'<block sequence start>'": "a list item '-'",
           "'<flow mapping start>'": "'{'", "'<flow sequence start>'": "'['",
           "'<anchor>'": "an anchor '&'", "'<alias>'": "an alias '*'", "'<tag>'": "a tag '!'"}


def _humane_yaml(what: str, ctx: str, since: int | None) -> str | None:
    """The plain-words message of a PyYAML problem, or None for one not translated."""
    at = f" on line {since}" if since else ""
    if "'\\t'" in what or "'\t'" in what or "\t" in what:
        return "a tab character; indent with spaces, YAML does not allow tabs"
    if what.startswith("expected <block end>, but found "):
        found = what.rsplit("but found ", 1)[1]
        if found == "'?'":
            return ("a line starting with '? ' does not fit here (YAML reads it as a complex "
                    "key); put the text in quotes, or indent the line like the lines above it")
        thing = _TOKENS.get(found, found)
        return (f"{thing} here is indented differently from the lines above it (the block "
                f"starts{at}); indent it like its neighbours, with spaces")
    if what.startswith("expected ',' or ']'"):
        return (f"the list opened with '['{at} is not closed before this point; add its "
                "']' (and quote an item that contains ':' or ',')")
    if what.startswith("expected ',' or '}'"):
        return (f"the mapping opened with '{{'{at} is not closed before this point; add "
                "its '}' (and quote a value that contains ',')")
    if "but found '<stream end>'" in what and "flow" in ctx:
        return f"the file ends inside the '[' or '{{' opened{at}; close it"
    if "unexpected end of stream" in what and "quoted scalar" in ctx:
        return f"the quote opened{at} is never closed; add the closing quote"
    if "mapping values are not allowed" in what:
        return ("a ': ' inside a value; put quotes around a value that contains ': ' "
                "(command: \"echo note: done\")")
    if "could not find expected ':'" in what:
        return (f"the line{at} is neither 'key: value' nor '- item' (a ':' missing?)")
    return None


def find_pipeline_files(paths: Iterable[Path]) -> list[Path]:
    """Every pipeline.yaml at or below each path (a file is taken as given)."""
    found: list[Path] = []
    for p in paths:
        if p.exists() and not p.is_dir():  # a file (load_file refuses a FIFO, a device)
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(
                q for q in p.rglob(PIPELINE_FILE)
                if not any(part.startswith(".") for part in q.parts[len(p.parts):])))
        else:
            raise ValidationFailed([Problem(str(p), 1, 1, "", "no such file or directory")])
    return found


def _ref_paths(block: Block, path: Path_) -> Iterator[tuple[Path_, Ref]]:
    for key, items in (("allOf", block.all_of), ("anyOf", block.any_of)):
        for i, item in enumerate(items or []):
            if isinstance(item, Block):
                yield from _ref_paths(item, (*path, key, i))
            else:
                yield (*path, key, i), item


def _typo_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from ``a`` to ``b``, capped at 2.

    The optimal-string-alignment distance, which counts ``ingset`` for ``ingest`` as one
    edit where Levenshtein counts two; names are at most 80 characters.
    """
    if a == b:
        return 0
    if abs(len(a) - len(b)) > 1:
        return 2
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return min(prev[-1], 2)


def near_miss(name: str, defined: Iterable[str]) -> str | None:
    """The defined name that ``name`` is most likely a typo of, or None.

    A typo is one edit (a letter added, dropped, changed, or two swapped: ``ingestt``,
    ``ingset`` for ``ingest``); names that differ only in a digit (``sales-v1`` and
    ``sales-v2``, ``report-2025`` and ``report-2026``) are taken as different pipelines.
    """
    for other in sorted(defined):
        if _typo_distance(name, other) != 1:
            continue
        if len(name) == len(other):
            diff = [(x, y) for x, y in zip(name, other, strict=True) if x != y]
            if len(diff) == 1 and diff[0][0].isdigit() and diff[0][1].isdigit():
                continue
        return other
    return None


def load_pipelines(
    paths: Iterable[Path], *, require_account: bool = False, check_refs: bool = False,
    registry: Registry | None = None, warn: Callable[[Problem], None] | None = None,
) -> list[Pipeline]:
    """Load every pipeline.yaml below ``paths``; raise one error listing every problem.

    ``require_account``: each file must name its ``account`` (simulation, local runtime).
    ``check_refs``: every referenced parent must be defined by one of the files.
    Without it a parent defined nowhere below ``paths`` is normal (another team's
    repository defines it) and is passed to ``warn``; but a parent one typo away from a
    pipeline defined here, in the same account, is always an error with a did-you-mean.
    """
    problems: list[Problem] = []
    loaded: list[LoadedPipeline] = []
    files = find_pipeline_files(paths)
    if not files:
        raise ValidationFailed([Problem(", ".join(map(str, paths)), 1, 1, "",
                                        f"no {PIPELINE_FILE} found")])
    unreadable: dict[tuple[str | None, str], str] = {}
    for f in files:
        try:
            lp = load_file(f, registry)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            guessed = _guess_key(f)
            if guessed is not None:  # a file that failed is not "defined nowhere"
                unreadable.setdefault(guessed, str(f))
            continue
        if require_account and lp.pipeline.account is None:
            line, col = lp.positions.of(("name",))
            problems.append(Problem(str(f), line, col, "account", "required here: give the "
                                    "pipeline's 12-digit AWS account (account: \"111111111111\")"))
            continue
        loaded.append(lp)
    seen: dict[tuple[str | None, str], str] = {}
    for lp in loaded:
        p = lp.pipeline
        key = (p.account, p.name)
        if key in seen:
            line, col = lp.positions.of(("name",))
            problems.append(Problem(p.source, line, col, "name", f"pipeline {p.name!r} in account "
                                    f"{p.account} is also defined in {seen[key]}"))
        else:
            seen[key] = p.source
    problems.extend(check_references(
        [lp.pipeline for lp in loaded], strict=check_refs, warn=warn,
        positions={lp.pipeline.source: lp.positions for lp in loaded}, defined=unreadable))
    if problems:
        raise ValidationFailed(problems)
    return [lp.pipeline for lp in loaded]


_NAME_LINE = re.compile(rb'^name:[ \t]*["\']?([A-Za-z0-9_.-]{1,80})["\']?[ \t]*(?:#.*)?$', re.M)
_ACCOUNT_LINE = re.compile(rb'^account:[ \t]*["\']?(\d{12})["\']?[ \t]*(?:#.*)?$', re.M)


def _guess_key(path: Path) -> tuple[str | None, str] | None:
    """``(account, name)`` of a pipeline.yaml that failed to load, read from its top-level
    ``name:`` and ``account:`` lines (None when there is no such name line): references to
    it then get no second, misleading problem ("no pipeline.yaml defines ..."), only the
    file's own."""
    try:
        raw = _read_regular(path)[:MAX_FILE_BYTES]  # a FIFO would block, a huge file fill memory
    except (OSError, _NotRegular):
        return None
    name = _NAME_LINE.search(raw)
    if name is None:
        return None
    account = _ACCOUNT_LINE.search(raw)
    return (account.group(1).decode() if account else None), name.group(1).decode()


def check_references(
    pipelines: Iterable[Pipeline], *, strict: bool = False,
    warn: Callable[[Problem], None] | None = None,
    positions: Mapping[str, Positions] | None = None,
    defined: Mapping[tuple[str | None, str], str] | None = None,
) -> list[Problem]:
    """Problems about parents (``trigger.executions`` references) no given pipeline defines.

    A parent one typo away from a pipeline of the same account is always a problem, with a
    did-you-mean. Any other undefined parent is a problem when ``strict`` (simulation:
    every parent must be given) and otherwise passed to ``warn`` (another team's
    repository may define it). ``positions`` by source file (else each file with a
    problem is read again for its positions). ``defined``: the file of every pipeline
    (account, name) that parents may be, when ``pipelines`` are only the ones to check.
    """
    pipelines = list(pipelines)
    seen: dict[tuple[str | None, str], str] = dict(defined or {})
    for p in pipelines:
        seen.setdefault((p.account, p.name), p.source)
    names: dict[str | None, set[str]] = {}
    for account, name in seen:
        names.setdefault(account, set()).add(name)
    problems: list[Problem] = []
    for p in pipelines:
        if p.trigger.executions is None:
            continue
        for path, ref in _ref_paths(p.trigger.executions, ("trigger", "executions")):
            account = ref.account or p.account
            if (account, ref.name) in seen:
                continue
            line, col = _positions_of(p.source, positions).of((*path, "name"))
            field_ = _display((*path, "name"))
            in_account = f"in account {account}" if account else "in this pipeline's account"
            typo = near_miss(ref.name, names.get(account, ()))
            if typo is not None:
                problems.append(Problem(p.source, line, col, field_, (
                    f"no pipeline {ref.name!r} {in_account}; did you mean {typo!r} (defined in "
                    f"{seen[(account, typo)]})? A parent one letter away from a pipeline of "
                    "the same account is taken for a typo")))
                continue
            elsewhere = sorted(str(a) for a, n in seen if n == ref.name and a != account)
            hint = f" ({ref.name!r} is defined in account {', '.join(elsewhere)})" \
                if elsewhere else ""
            if strict:
                problems.append(Problem(p.source, line, col, field_,
                                        f"no pipeline.yaml defines {ref.name!r} {in_account}"
                                        f"{hint}"))
            elif warn is not None:
                warn(Problem(p.source, line, col, field_,
                             f"no pipeline.yaml here defines {ref.name!r} {in_account}{hint}; "
                             "fine if another team's repository does"))
    return problems


def _positions_of(source: str, known: Mapping[str, Positions] | None) -> Positions:
    """Positions of ``source``: given, or read again (a cached pipeline has none)."""
    if known is not None and source in known:
        return known[source]
    try:
        return parse_yaml(Path(source).read_text(encoding="utf-8"))[1]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, _DuplicateKey):
        return Positions()
