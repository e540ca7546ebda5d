"""Experiment config files: loading, ``KEY=VALUE`` overrides, and checks of every component.

A config file is the whole experiment (mmengine format): ``model`` (the segmentor and its method),
``test_dataloader`` (the dataset's layout and pipeline), ``test_evaluator``, ``dataset_name``,
``data_subdir`` and ``protocol`` (the name of a protocol file, ``configs/_base_/protocols/<name>.py``,
and optionally settings of its own). :mod:`.experiment` resolves a config into an experiment.
"""
from __future__ import annotations

import ast
import inspect
from typing import Any, Dict, Iterable, List, Tuple

from mmengine.config import Config

from .. import resources
from ..errors import ConfigError, suggest

def load_config(path: str) -> Config:
    """Read a config file (a path, ``configs/<...>.py`` of the shipped configs, or a bare name)."""
    found = resources.find_config(path)
    if not found.is_file():
        known = resources.known_configs()
        hint = suggest(path, known) or f" (configs: {', '.join(known[:8])} ...)"
        raise ConfigError(f"config file {path} does not exist{hint}")
    try:
        return Config.fromfile(str(found))
    except Exception as err:  # noqa: BLE001 - mmengine raises many kinds; all mean "bad config file"
        raise ConfigError(f"config file {found} cannot be loaded: {type(err).__name__}: {err}") from err


# --- KEY=VALUE overrides ------------------------------------------------------------------------

def parse_value(text: str) -> Any:
    """A ``--cfg-options`` value: a Python literal (quoted strings keep their spaces), a bracketed
    list of values, true/false/none, a number, or else the text itself, spaces included."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] + stripped[-1] in ("[]", "()"):
        items = [parse_value(item) for item in _split_top_level(stripped[1:-1])]
        return items if stripped[0] == "[" else tuple(items)
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return text


def _split_top_level(text: str) -> List[str]:
    """Split on the commas that are not inside brackets or quotes."""
    items, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    tail = text[start:]
    return items + [tail] if tail.strip() or items else items


def parse_cfg_options(pairs: Iterable[str]) -> Dict[str, Any]:
    """``["model.depth=4", ...]`` -> ``{"model.depth": 4, ...}`` (values by :func:`parse_value`)."""
    options: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cfg-options {pair!r} is not KEY=VALUE (e.g. model.feature_surgery=weighted)")
        options[key.strip()] = parse_value(value)
    return options


def _compatible(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return True
    if "auto" in (old, new) and all(isinstance(v, (str, int)) for v in (old, new)):
        return True  # settings like window_batch_size take a number or "auto"
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return not (isinstance(old, int) and isinstance(new, float) and not new.is_integer())
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return True
    if isinstance(old, dict) and isinstance(new, dict):
        return True
    # a string setting may name a choice or a file; a choice may also become a list (templates)
    if isinstance(old, str) and isinstance(new, (list, tuple)):
        return True
    return type(old) is type(new)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _checked_value(plain: dict, key: str, value: Any, source: str) -> Any:
    """``value`` for the existing setting ``key`` (dotted) of ``plain``; unknown keys and wrong types raise."""
    node: Any = plain
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict):
            raise ConfigError(f"{source} {key}: {'.'.join(parts[:depth])} is not a dict of settings")
        if part not in node:
            where = ".".join(parts[:depth]) or "the config"
            raise ConfigError(f"{source} {key}={value!r}: unknown key {part!r} in {where}{suggest(part, node.keys())}")
        if depth < len(parts) - 1:
            node = node[part]
    old = node[parts[-1]]
    if not _compatible(old, value):
        raise ConfigError(f"{source} {key}={value!r}: expected {_a(type(old).__name__)} like {old!r}, "
                          f"got {_a(type(value).__name__)}")
    if isinstance(old, int) and not isinstance(old, bool) and isinstance(value, float):
        return int(value)
    return value


def apply_cfg_options(cfg: Config, options: Dict[str, Any], source: str = "--cfg-options") -> None:
    """Merge ``KEY=VALUE`` overrides; every key must exist and every value keep its type."""
    plain = cfg.to_dict()
    cfg.merge_from_dict({key: _checked_value(plain, key, value, source) for key, value in options.items()})


# --- components ---------------------------------------------------------------------------------

def _accepted_arguments(cls: type) -> Tuple[set, bool]:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up the class hierarchy."""
    accepted = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        accepted |= {name for name, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            accepted.discard("self")
            return accepted, True
    return accepted, False


def check_component(cfg: dict, registry, what: str, source: str) -> type:
    """The registered class of ``cfg['type']``; unknown types and keyword arguments are refused."""
    type_name = cfg.get("type")
    cls = registry.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ConfigError(f"{source}: unknown {what} type {type_name!r}{suggest(str(type_name), registry.module_dict)}")
    accepted, closed = _accepted_arguments(cls)
    if closed:
        for key in cfg:
            if key != "type" and key not in accepted:
                raise ConfigError(f"{source}: {what} {type_name} has no option {key!r}{suggest(key, accepted)}")
    return cls
