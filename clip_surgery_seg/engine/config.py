"""Load an experiment config and apply command-line overrides, refusing unknown keys and wrong types."""
from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path
from typing import Any, Dict, Iterable

from mmengine.config import Config
from ..errors import ConfigError



def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def load_config(path: str) -> Config:
    if not os.path.isfile(path):
        configs = Path(__file__).resolve().parents[2] / "configs"
        known = sorted(p.relative_to(configs.parent).as_posix() for p in configs.rglob("*.py")
                       if "_base_" not in p.parts)
        raise ConfigError(f"config file {path} does not exist{_suggest(path, known)}"
                          + ("" if _suggest(path, known) else f" (configs: {', '.join(known[:8])})"))
    try:
        return Config.fromfile(path)
    except Exception as err:  # noqa: BLE001 - mmengine raises many kinds; all mean "bad config file"
        raise ConfigError(f"config file {path} cannot be loaded: {type(err).__name__}: {err}") from err


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


def apply_cfg_options(cfg: Config, options: Dict[str, Any], source: str = "--cfg-options") -> None:
    """Merge ``KEY=VALUE`` overrides; every key must exist and every value keep its type."""
    plain = cfg.to_dict()
    for key, value in options.items():
        node: Any = plain
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict):
                raise ConfigError(f"{source} {key}: {'.'.join(parts[:depth])} is not a dict of settings")
            if part not in node:
                where = ".".join(parts[:depth]) or "the config"
                raise ConfigError(f"{source} {key}={value!r}: unknown key {part!r} in {where}"
                                  f"{_suggest(part, node.keys())}")
            if depth < len(parts) - 1:
                node = node[part]
        old = node[parts[-1]]
        if not _compatible(old, value):
            raise ConfigError(f"{source} {key}={value!r}: expected {_a(type(old).__name__)} like {old!r}, "
                              f"got {_a(type(value).__name__)}")
        if isinstance(old, int) and not isinstance(old, bool) and isinstance(value, float):
            value = int(value)
    cfg.merge_from_dict(options)


def check_component(cfg: dict, registry, what: str, source: str) -> type:
    """The registered class of ``cfg['type']``; unknown types and keyword arguments are refused."""
    type_name = cfg.get("type")
    cls = registry.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ConfigError(f"{source}: unknown {what} type {type_name!r}{_suggest(str(type_name), registry.module_dict)}")
    accepted = set()
    for klass in cls.__mro__:  # follow **kwargs up the class hierarchy
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        accepted |= {name for name, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    else:
        return cls
    accepted.discard("self")
    for key in cfg:
        if key != "type" and key not in accepted:
            raise ConfigError(f"{source}: {what} {type_name} has no option {key!r}{_suggest(key, accepted)}")
    return cls
