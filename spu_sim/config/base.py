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
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ..errors import ConfigError


Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""A random seed: numpy's generators take 0 <= seed < 2^32 (a negative seed fails inside numpy, far from the key)."""

# Physical range of a nonzero value by the unit its field name ends with (house style: names carry units). Wider
# than any circuit spu-sim simulates, narrow enough that products and inverses of a few of them stay finite in
# float64 (1e290 farad or 1e-300 ohm overflow a design's arithmetic long before they reach an engine).
PHYSICAL_RANGES: dict[str, tuple[float, float, str]] = {
    "_farad": (1e-21, 1e3, "F"),
    "_ohm": (1e-6, 1e18, "ohm"),
    "_henry": (1e-15, 1e6, "H"),
    "_hz": (1e-3, 1e13, "Hz"),
    "_v": (1e-15, 1e4, "V"),
    "_a": (1e-18, 1e3, "A"),
}


def physical_range(name: str) -> tuple[float, float, str] | None:
    """(low, high, unit) of a nonzero value of the field ``name`` (by its unit suffix), or None."""
    for suffix, rng in PHYSICAL_RANGES.items():
        if name.endswith(suffix):
            return rng
    return None


def physical(v: Any, info: ValidationInfo) -> Any:
    """Field validator for every field (``field_validator("*")``): a nonzero number in a field whose name ends in
    a unit (PHYSICAL_RANGES) must lie within that unit's range."""
    rng = physical_range(info.field_name or "")
    if rng is None or isinstance(v, bool) or not isinstance(v, (int, float)) or v == 0:
        return v
    low, high, unit = rng
    if not low <= abs(v) <= high:
        raise ValueError(f"outside the physical range {low:g} .. {high:g} {unit} (magnitude); "
                         "give a value in it")
    return v


class Strict(BaseModel):
    """Base: unknown keys are errors, values are validated on assignment too, every float of every section is
    finite (``allow_inf_nan=False``), and every float field whose name ends in a unit (``PHYSICAL_RANGES``) is
    zero or within that unit's physical range (a field's own bounds, e.g. ``gt=0``, apply on top)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)

    _physical = field_validator("*", mode="after")(physical)


def finite(v: float | None, info: Any = None) -> float | None:
    """Field validator: a number must be finite (None passes)."""
    if v is not None and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


# ---------------------------------------------------------------- loading and error formatting

_CHOICE_WORD = {"topology": "topology", "backend": "backend", "kind": "kind", "model": "model",
                "name": "name"}


def _is_tag(part: Any) -> bool:
    """Is a location part one of pydantic's union-branch tags (``list[...]``, ``str``, ``function-after[...]``, a
    model class name such as ``RandomDesign``) rather than a field name? Field names are lower case or single
    capitals (``X``, ``J``); class names are CamelCase."""
    if isinstance(part, int):
        return False
    return (part.startswith(("list[", "dict[", "function-", "literal[")) or "[" in part
            or part in ("str", "float", "int", "bool", "dict", "list", "none")
            or (part[:1].isupper() and part.isidentifier() and any(c.islower() for c in part)))


def _models_in(ann: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists and dicts)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in typing.get_args(ann) for m in _models_in(a)]


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at the raw pydantic location ``loc`` (to list the valid keys
    there); a union's branch tag in ``loc`` (a model's class name) selects that branch."""
    cands: list[type[BaseModel]] = [model] if model is not None else []
    for part in loc:
        if isinstance(part, int):
            continue
        if _is_tag(part):
            named = [c for c in cands if c.__name__ == part]
            cands = named or cands
            continue
        holder = next((c for c in cands if part in c.model_fields), None)
        if holder is None:
            return None
        cands = _models_in(holder.model_fields[part].annotation)
    return cands[0] if cands else None


def _clean_loc(loc: tuple) -> list:
    """Drop pydantic's union-branch tags (list[...], str, function-after[...], model names) from a location."""
    return [p for p in loc if not _is_tag(p)]


# errors that say only "the input is not of this branch's type": a union reports one per branch it rejects
_TYPE_ERRORS = {"string_type": "a string", "list_type": "a list", "model_type": "a mapping", "dict_type": "a mapping",
                "model_attributes_type": "a mapping", "float_type": "a number", "int_type": "an integer",
                "bool_type": "true or false", "int_from_float": "an integer", "tuple_type": "a list"}


def _branch(loc: tuple) -> tuple:
    """The union branches an error's location went through (its tags, with the path before each)."""
    return tuple((i, p) for i, p in enumerate(loc) if _is_tag(p))


def _pick(errors: list[dict]) -> dict:
    """The error to report. A union reports every branch it tried: the branches
    that failed only on the input's type are not what the user meant when another branch got further, and of the
    rest the branch with the fewest errors is the one the input fits (e.g. ``X: {dataset: ..., sed: 1}`` is a
    data-set source with one unknown key, not a random design with three)."""
    real = [e for e in errors if e["type"] not in _TYPE_ERRORS] or errors
    groups: dict[tuple, list[dict]] = {}
    for e in real:
        groups.setdefault(_branch(tuple(e["loc"])), []).append(e)
    group = min(groups.values(), key=lambda g: (len(g), -max(len(e["loc"]) for e in g)))
    extra = [e for e in group if e["type"] == "extra_forbidden"]
    first = extra[0] if extra else max(group, key=lambda e: (e["type"] == "literal_error", len(e["loc"])))
    return first


def format_validation_error(err: ValidationError, root: str = "", model: type[BaseModel] | None = None) -> str:
    """One line for the most useful error: dotted path, what is wrong, the fix.

    Of a union's errors, the branch the input fits best (``_pick``); unknown keys come first and list the valid
    keys at that level (when ``model`` is given); a bad choice lists the choices; a value of the wrong type names
    the types the field takes.
    """
    errors = err.errors(include_url=False)
    first = _pick(errors)
    raw = tuple(first["loc"])
    loc = _clean_loc(raw)
    path = root
    for p in loc:
        path += f"[{p}]" if isinstance(p, int) else (("." if path else "") + str(p))
    path = path or "config"
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, raw[:-1])
        keys = f"; valid keys here: {', '.join(parent.model_fields)}" if parent else "; check the spelling"
        return f"{path}: unknown key{keys}"
    if kind == "literal_error":
        choices = first.get("ctx", {}).get("expected", "")
        choices = choices.replace("'", "").replace(" or ", ", ")
        word = _CHOICE_WORD.get(str(loc[-1]) if loc else "", "valid value")
        return f"{path}: {reprlib.repr(value)} is not a {word}; choose one of: {choices}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "finite_number":
        return f"{path}: is {value!r}, not a finite number; give a finite value"
    if kind in _TYPE_ERRORS:
        same = [e for e in errors if _clean_loc(tuple(e["loc"])) == loc and e["type"] in _TYPE_ERRORS]
        wanted = list(dict.fromkeys(_TYPE_ERRORS[e["type"]] for e in same))
        hint = " (a numpy array: pass array.tolist() or save it as .npy and give the path)" \
            if type(value).__module__ == "numpy" else ""
        return (f"{path}: got {type(value).__name__} {reprlib.repr(value)}; give {' or '.join(wanted)}{hint}")
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


def load_config(source: Any, model: type[BaseModel], base_dir: str | Path | None = None) -> Any:
    """Load a config from a YAML path, a dict or an existing instance and validate it with ``model``.

    Relative paths inside the config resolve against the YAML file's folder (for a dict: ``base_dir``, the folder of
    the file it came from, or else the current folder): the validators that resolve a path read it from the
    validation context (``info.context["base_dir"]``), and a model with a private ``_base_dir`` gets that folder.
    """
    if isinstance(source, model):
        return source
    base_dir = Path(".") if base_dir is None else Path(base_dir)
    if isinstance(source, (str, Path)):
        data, base_dir = read_yaml(source)
    else:
        data = source
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping of sections (problem, circuit, ...)")
    try:
        cfg = model.model_validate(data, context={"base_dir": base_dir})
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
