"""Config base: the strict pydantic base model, YAML reading, loading and one-line error formatting.

``load_config(path_or_dict, model)`` is the only way in: load -> validate -> resolve paths. Every failure is a
``ConfigError`` with one line naming the dotted field path and the fix, e.g.

    circuit.topology: 'opamp_x' is not a topology; choose one of: opamp, rlc

The config never reaches a netlist as text: the generator emits only numbers it computed and names it
chose (see spu_sim.spice).
"""

from __future__ import annotations

import math
import re
import reprlib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError


class Strict(BaseModel):
    """Base: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


def finite(v: float | None, info: Any = None) -> float | None:
    """Field validator: a number must be finite (None passes)."""
    if v is not None and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


# ---------------------------------------------------------------- loading and error formatting

_CHOICE_WORD = {"topology": "topology", "backend": "backend", "kind": "kind", "model": "model",
                "name": "name"}


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at ``loc`` (to list the valid keys there)."""
    cls: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        ann = cls.model_fields[part].annotation
        while typing.get_origin(ann) is not None:
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            ann = models[0] if models else (args[0] if args else None)
        cls = ann
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _clean_loc(loc: tuple) -> list:
    """Drop pydantic's union-branch tags (list[...], str, function-after[...], model names) from a location."""
    return [p for p in loc if isinstance(p, int) or not (
        p.startswith(("list[", "function-", "literal[")) or p in ("str", "float", "int") or "[" in p
        or (p[:1].isupper() and p.isidentifier()))]


def format_validation_error(err: ValidationError, root: str = "", model: type[BaseModel] | None = None) -> str:
    """One line for the most useful error: dotted path, what is wrong, the fix.

    Unknown keys come first and list the valid keys at that level (when ``model`` is given); a bad
    choice lists the choices; the number of further errors is appended.
    """
    errors = err.errors(include_url=False)
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    # union types report one error per branch; prefer the most specific (longest path) message
    first = extra[0] if extra else max(errors, key=lambda e: (e["type"] == "literal_error", len(e["loc"])))
    loc = _clean_loc(tuple(first["loc"]))
    path = root
    for p in loc:
        path += f"[{p}]" if isinstance(p, int) else (("." if path else "") + str(p))
    path = path or "config"
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, tuple(loc[:-1]))
        keys = f"; valid keys here: {', '.join(parent.model_fields)}" if parent else "; check the spelling"
        return f"{path}: unknown key{keys}"
    if kind == "literal_error":
        choices = first.get("ctx", {}).get("expected", "")
        choices = choices.replace("'", "").replace(" or ", ", ")
        word = _CHOICE_WORD.get(str(loc[-1]) if loc else "", "valid value")
        return f"{path}: {reprlib.repr(value)} is not a {word}; choose one of: {choices}"
    if kind == "missing":
        return f"{path}: required key is missing"
    msg = first["msg"].removeprefix("Value error, ")
    shown = "" if isinstance(value, (dict, list)) else f" (got {reprlib.repr(value)})"
    return f"{path}: {msg}{shown}"


MAX_CONFIG_BYTES = 64 * 1024 * 1024


class ConfigLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """yaml's safe loader with two changes: numbers such as 1e3 and 1.0e-9 are floats (YAML 1.2; PyYAML's 1.1
    resolver reads them as strings, which strict typing then refuses), and a key given twice in one mapping is
    an error rather than silently the last value."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (also on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+|[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)$"
               r"|^[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """YAML text -> data with ConfigLoader (see there)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a safe loader


def read_yaml(path: str | Path) -> tuple[dict[str, Any], Path]:
    """A YAML config file as a dict (ConfigLoader: safe, YAML 1.2 floats, no duplicate keys) and the folder its
    relative paths resolve against.

    Raises ConfigError (one line) for a missing, huge, binary or invalid file or a top level that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes is not a config file (limit {MAX_CONFIG_BYTES}); "
                          "put large matrices in .npy files")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); give a YAML config") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping of sections (problem, circuit, ...)")
    return data, path.resolve().parent


def load_config(source: Any, model: type[BaseModel]) -> Any:
    """Load a config from a YAML path, a dict or an existing instance and validate it with ``model``.

    Relative paths inside the config resolve against the YAML file's folder (or the current folder
    for a dict): a model with a private ``_base_dir`` gets that folder.
    """
    if isinstance(source, model):
        return source
    base_dir = Path(".")
    if isinstance(source, (str, Path)):
        data, base_dir = read_yaml(source)
    else:
        data = source
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping of sections (problem, circuit, ...)")
    try:
        cfg = model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, model=model)) from None
    if hasattr(cfg, "_base_dir"):
        cfg._base_dir = base_dir
    return cfg


def save_config(cfg: BaseModel) -> str:
    """The resolved config as YAML text."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg.model_dump(mode="json")
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the C emitter: 10x faster on inline matrices
    return yaml.dump(data, Dumper=dumper, sort_keys=False)
