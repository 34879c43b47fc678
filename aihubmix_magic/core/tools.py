"""Tools: Python functions a model may call, described as JSON schemas and run with the user's approval.

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''The weather in a city now.

        Args:
            city: the city's name, e.g. Paris
        '''

    tool = Tool.from_function(get_weather)   # name, description, parameters (a JSON schema)
    tool.definition("chat")                  # {"type": "function", "function": {...}}
    tool.definition("responses")             # {"type": "function", "name": ..., ...} (flat)

The schema comes from the signature and the docstring: type hints (str, int, float, bool, list[...],
tuple[...], dict[str, ...], Literal, Enum, Optional / `X | None`), a default makes a parameter optional,
the docstring's first paragraph is the description, and an `Args:` (Google) or `Parameters` (NumPy)
section gives each parameter its own. A pydantic model parameter is described by its
`model_json_schema()` (pydantic is never imported here: a class with that method is enough). A function
that cannot be described (no name, `*args`, a hint with no JSON equivalent) raises ToolDefinitionError
naming it, before anything is sent.

Running a call (`run_call`) parses the model's JSON arguments, turns them into the declared types (an
Enum member, a pydantic model), calls the function and turns its result into capped text (`result_text`):
a str as it is, JSON for dicts, lists and numbers, a DataFrame as a Markdown table. An exception in the
tool becomes its one-line message, returned to the model. No I/O here besides calling the tool.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import sys
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ToolDefinitionError
from .types import ToolCall, ToolRun, dataframe_markdown

__all__ = [
    "DECLINED",
    "MAX_RESULT_CHARS",
    "Tool",
    "ToolDefinitionError",
    "describe_tools",
    "result_text",
    "run_call",
]

MAX_RESULT_CHARS = 16_000  # a tool result sent back to the model (and kept in the step) is cut here
MAX_TABLE_ROWS = 50
DECLINED = "The user declined to run this tool."
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, eq=False)
class Tool:
    """A function the model may call: its name, description, JSON-schema parameters and the callable."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., Any] | None = field(default=None, repr=False)
    # how to turn JSON arguments into Python values: parameter name -> converter
    converters: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None) -> Tool:
        """Describe `function` from its signature and docstring (ToolDefinitionError if it cannot be)."""
        return _describe(function, name=name, description=description)

    def definition(self, endpoint: str) -> dict[str, Any]:
        """The tool as the endpoint's `tools` entry: nested on chat, flat on responses."""
        spec: dict[str, Any] = {"name": self.name}
        if self.description:
            spec["description"] = self.description
        spec["parameters"] = json.loads(json.dumps(self.parameters))  # a copy the body may own
        if endpoint == "chat":
            return {"type": "function", "function": spec}
        return {"type": "function", **spec}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.function is None:
            raise TypeError(f"the tool {self.name!r} has no Python function")
        return self.function(*args, **kwargs)


def describe_tools(tools: Iterable[Any]) -> tuple[Any, ...]:
    """Tools as given to a request: a `Tool`, a callable (described here), or a JSON definition (a dict,
    sent as it is and never run). ToolDefinitionError names what cannot be described; two tools with
    one name are refused."""
    described: list[Any] = []
    for tool in tools:
        if isinstance(tool, (Tool, dict)):
            described.append(tool)
        elif callable(tool):
            described.append(Tool.from_function(tool))
        else:
            raise ToolDefinitionError(f"{tool!r} is not a function: a tool is a Python function (or a JSON "
                                      "tool definition)")
    names = [tool_name(tool) for tool in described]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise ToolDefinitionError(f"two tools are named {', '.join(repeated)}: a model tells them apart by name")
    return tuple(described)


def tool_name(tool: Any) -> str:
    if isinstance(tool, Tool):
        return tool.name
    if isinstance(tool, dict):
        function = tool.get("function")
        return str((function if isinstance(function, dict) else tool).get("name") or "")
    return ""


# -- the schema ------------------------------------------------------------------------------------------
def _describe(function: Callable[..., Any], *, name: str | None, description: str | None) -> Tool:
    label = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or repr(function)
    if not callable(function):
        raise ToolDefinitionError(f"{label} is not a function")
    if isinstance(function, type):
        raise ToolDefinitionError(f"{label} is a class: give a function that the model may call")
    tool_name = str(name or getattr(function, "__name__", "") or "")
    if not _NAME.match(tool_name):
        raise ToolDefinitionError(f"cannot describe {label}: a tool needs a name of letters, digits, _ or - "
                                  "(define it with def, not lambda)")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise ToolDefinitionError(f"cannot describe {tool_name}: Python gives no signature for it") from None
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # a hint naming something undefined, a string hint that is not Python
        raise ToolDefinitionError(f"cannot describe {tool_name}: its type hints cannot be read ({exc})") from None
    summary, documented = _parse_docstring(inspect.getdoc(function) or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    converters: dict[str, Callable[[Any], Any]] = {}
    definitions: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolDefinitionError(f"cannot describe {tool_name}: *{parameter.name} / **{parameter.name} have no "
                                      "JSON schema; name every parameter")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"cannot describe {tool_name}: {parameter.name} is positional-only; the "
                                      "model passes arguments by name")
        hint = hints.get(parameter.name, parameter.annotation)
        has_default = parameter.default is not parameter.empty
        if hint is parameter.empty:  # no hint: the default's type, else text
            hint = type(parameter.default) if has_default and parameter.default is not None else str
        try:
            schema, convert = _schema(hint, definitions)
        except _Undescribable as exc:
            raise ToolDefinitionError(f"cannot describe {tool_name}: parameter {parameter.name!r} has the type "
                                      f"{exc} which has no JSON schema (use str, int, float, bool, list, dict, "
                                      "Literal, an Enum or a pydantic model)") from None
        schema = dict(schema)
        if parameter.name in documented:
            schema["description"] = documented[parameter.name]
        if has_default and _jsonable(parameter.default):
            if isinstance(parameter.default, enum.Enum):
                schema["default"] = parameter.default.value
            elif parameter.default is not None or _allows_null(schema):
                schema["default"] = parameter.default
        properties[parameter.name] = schema
        if not has_default:
            required.append(parameter.name)
        if convert is not None:
            converters[parameter.name] = convert
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if definitions:
        parameters["$defs"] = definitions
    return Tool(name=tool_name, description=description if description is not None else summary,
                parameters=parameters, function=function, converters=converters)


class _Undescribable(Exception):
    pass


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(hint: Any, definitions: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], Any] | None]:
    """The JSON schema of a type hint, and a converter from the JSON value to the Python one (or None)."""
    if hint is Any or hint is object:
        return {}, None
    if hint is None or hint is type(None):
        return {"type": "null"}, None
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}, (float if hint is float else None)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema, convert = _schema(args[0], definitions)
        text = next((a for a in args[1:] if isinstance(a, str)), None)
        return ({**schema, "description": text} if text else schema), convert
    if origin is typing.Literal:
        return _enum_schema(list(args)), None
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        members = [a for a in args if a is not type(None)]
        nullable = len(members) < len(args)
        if len(members) == 1:
            schema, convert = _schema(members[0], definitions)
            if nullable:
                schema = _nullable(schema)
                convert = _skip_none(convert) if convert is not None else None
            return schema, convert
        options = [_schema(member, definitions)[0] for member in members]
        if nullable:
            options.append({"type": "null"})
        return {"anyOf": options}, None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_schema([member.value for member in hint]), hint
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, typing.Sequence,
                                                           _abc("Sequence"), _abc("Iterable")):
        container = origin or hint
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            items = [_schema(a, definitions) for a in args]
            schema = {"type": "array", "prefixItems": [s for s, _ in items], "minItems": len(args),
                      "maxItems": len(args)}
            return schema, tuple
        item_hint = args[0] if args else Any
        item_schema, item_convert = _schema(item_hint, definitions)
        schema = {"type": "array", "items": item_schema} if item_schema else {"type": "array"}
        make = container if container in (tuple, set, frozenset) else list

        def convert(values: Any) -> Any:
            if not isinstance(values, list):
                return values
            return make(item_convert(v) for v in values) if item_convert else make(values)
        return schema, (convert if (item_convert or make is not list) else None)
    if hint is dict or origin in (dict, typing.Mapping, _abc("Mapping")):
        value_hint = args[1] if len(args) == 2 else Any
        value_schema, _ = _schema(value_hint, definitions)
        schema = {"type": "object"}
        if value_schema:
            schema["additionalProperties"] = value_schema
        return schema, None
    if isinstance(hint, type) and callable(getattr(hint, "model_json_schema", None)):  # a pydantic model
        model: Any = hint
        model_schema = dict(model.model_json_schema())
        definitions.update(model_schema.pop("$defs", {}))
        return model_schema, model.model_validate
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        fields = typing.get_type_hints(hint)
        properties = {}
        required = []
        for item in dataclasses.fields(hint):
            properties[item.name] = _schema(fields.get(item.name, Any), definitions)[0]
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                required.append(item.name)
        return ({"type": "object", "properties": properties, "required": required},
                lambda value: hint(**value) if isinstance(value, dict) else value)
    raise _Undescribable(getattr(hint, "__name__", None) or repr(hint))


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    kinds = {_SIMPLE.get(type(value)) for value in values}
    if len(kinds) == 1 and None not in kinds:
        return {"type": kinds.pop(), "enum": values}
    return {"enum": values}


def _abc(name: str) -> Any:
    import collections.abc

    return getattr(collections.abc, name)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {"type", "items", "additionalProperties", "enum", "description"}:
        result = {**schema, "type": [kind, "null"]}
        if "enum" in result and None not in result["enum"]:
            result["enum"] = [*result["enum"], None]
        return result
    return {"anyOf": [schema, {"type": "null"}]}


def _allows_null(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind) or any(
        option.get("type") == "null" for option in schema.get("anyOf", ()))


def _skip_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _jsonable(value: Any) -> bool:
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# -- the docstring ---------------------------------------------------------------------------------------
_GOOGLE_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:\s*$")
_NUMPY_SECTION = re.compile(r"^(Parameters|Other Parameters)\s*$")
_ANY_SECTION = re.compile(r"^(Returns?|Yields?|Raises|Examples?|Notes?|See Also|References|Warnings?|"
                          r"Attributes|Todo)\s*:?\s*$")
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(?::\s*(.*))?$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph (one line), and each documented parameter's text (Google or NumPy style)."""
    lines = doc.expandtabs().splitlines()
    paragraph: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or _GOOGLE_SECTION.match(stripped) or _ANY_SECTION.match(stripped):
            if paragraph or _GOOGLE_SECTION.match(stripped) or _ANY_SECTION.match(stripped):
                break
            continue
        if paragraph and set(stripped) <= {"-", "="}:  # a NumPy heading's underline: the line was a heading
            paragraph.pop()
            break
        paragraph.append(stripped)
    summary = " ".join(paragraph)
    documented: dict[str, str] = {}
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if _GOOGLE_SECTION.match(stripped):
            index = _google_items(lines, index + 1, documented)
            continue
        if (_NUMPY_SECTION.match(stripped) and index + 1 < len(lines)
                and set(lines[index + 1].strip()) == {"-"}):
            index = _numpy_items(lines, index + 2, documented)
            continue
        index += 1
    return summary, documented


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google_items(lines: list[str], index: int, documented: dict[str, str]) -> int:
    base: int | None = None
    current: str | None = None
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        indent = _indent(line)
        if base is None:
            base = indent
        if indent < base or (indent == base and _ANY_SECTION.match(line.strip())):
            break
        match = _GOOGLE_ITEM.match(line.strip()) if indent == base else None
        if match:
            current = match.group(1).lstrip("*")
            documented[current] = match.group(3).strip()
        elif current is not None:
            documented[current] = (documented[current] + " " + line.strip()).strip()
        index += 1
    return index


def _numpy_items(lines: list[str], index: int, documented: dict[str, str]) -> int:
    base: int | None = None
    current: str | None = None
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            index += 1
            continue
        if index + 1 < len(lines) and lines[index + 1].strip() and set(lines[index + 1].strip()) <= {"-"}:
            break  # the next section's heading
        indent = _indent(line)
        if base is None:
            base = indent
        if indent < base:
            break
        match = _NUMPY_ITEM.match(stripped) if indent == base else None
        if match:
            for name in match.group(1).split(","):
                current = name.strip().lstrip("*")
                documented[current] = ""
        elif current is not None:
            documented[current] = (documented[current] + " " + stripped).strip()
        index += 1
    return index


# -- running a call --------------------------------------------------------------------------------------
def result_text(value: Any, limit: int = MAX_RESULT_CHARS) -> str:
    """A tool's result as text for the model: a str as it is, JSON for dicts, lists and numbers, a DataFrame
    or Series as a Markdown table (at most 50 rows), a pydantic model as its JSON; cut at `limit` characters."""
    text: str
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "null"
    elif isinstance(value, (dict, list, tuple, int, float, bool)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series)):
            frame = value.to_frame() if isinstance(value, pandas.Series) else value
            text = dataframe_markdown(frame, MAX_TABLE_ROWS)
        elif callable(getattr(value, "model_dump_json", None)):
            text = value.model_dump_json()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            text = json.dumps(dataclasses.asdict(value), ensure_ascii=False, default=str)
        elif isinstance(value, enum.Enum):
            text = json.dumps(value.value, default=str)
        else:
            text = str(value)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters cut)"
    return text


def one_line(exc: BaseException) -> str:
    """An exception as the one line the model (and the cell) gets."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def parse_arguments(call: ToolCall, tool: Tool | None) -> tuple[dict[str, Any], str | None]:
    """The call's arguments as a dict, and an error message when they cannot be used (None if fine)."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError as exc:
        return {}, f"The arguments are not valid JSON ({exc}): {call.arguments[:200]}"
    if not isinstance(arguments, dict):
        return {}, f"The arguments must be a JSON object, not {type(arguments).__name__}"
    if tool is None:
        return arguments, None
    properties = tool.parameters.get("properties") or {}
    unknown = [name for name in arguments if name not in properties]
    if unknown:
        return arguments, f"{tool.name} has no parameter {', '.join(unknown)} (it takes {', '.join(properties) or 'none'})"
    missing = [name for name in tool.parameters.get("required") or () if name not in arguments]
    if missing:
        return arguments, f"{tool.name} needs {', '.join(missing)}"
    return arguments, None


def run_call(call: ToolCall, tool: Tool | None, *, approved: bool, scrub: Callable[[str], str],
             arguments: dict[str, Any] | None = None, problem: str | None = None,
             started: float | None = None) -> ToolRun:
    """Run one approved call (or record a declined one): the ToolRun with its result or its error.

    `scrub` masks the API key in what goes to the tool and what comes back. An exception in the tool is
    caught (its one line is the error); KeyboardInterrupt goes on up."""
    started = time.perf_counter() if started is None else started
    if arguments is None:
        arguments, problem = parse_arguments(call, tool)
    arguments = _scrubbed(arguments, scrub)
    run = ToolRun(id=call.id, name=call.name, arguments=arguments, arguments_text=scrub(call.arguments),
                  approved=approved)
    if not approved:
        run.result = DECLINED
    elif tool is None or tool.function is None:
        run.error = f"There is no tool named {call.name!r} here"
    elif problem is not None:
        run.error = problem
    else:
        try:
            values = {name: tool.converters[name](value) if name in tool.converters else value
                      for name, value in arguments.items()}
        except Exception as exc:
            run.error = f"Invalid arguments for {tool.name}: {one_line(exc)}"
        else:
            try:
                value = tool.function(**values)
            except Exception as exc:  # the tool's own failure goes back to the model, in one line
                run.error = scrub(one_line(exc))
            else:
                run.result = scrub(result_text(value))
    run.elapsed = time.perf_counter() - started
    return run


def _scrubbed(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item, scrub) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item, scrub) for item in value]
    return value
