"""Experiment config files: loading, ``KEY=VALUE`` overrides, and checks of every component.

A config file is the whole experiment (mmengine format): ``model`` (the segmentor and its method),
``test_dataloader`` (the dataset's layout and pipeline), ``test_evaluator``, ``dataset_name``,
``data_subdir`` and ``protocol`` (the name of a protocol file, ``configs/_base_/protocols/<name>.py``,
and optionally settings of its own). :mod:`.experiment` resolves a config into an experiment.
"""
from __future__ import annotations

import ast
import inspect
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from mmengine.config import Config

from .. import resources
from ..errors import ConfigError, suggest
from ..named import is_int, is_number

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
    """``["model.depth=4", ...]`` -> ``{"model.depth": 4, ...}`` (values by :func:`parse_value`), in the
    order they apply: a key given again moves to the end with its last value, and a component set
    again by name (``model.postprocess=pamr``) drops the parameters set before it."""
    options: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--cfg-options {pair!r} is not KEY=VALUE (e.g. model.feature_surgery=weighted)")
        options.pop(key, None)
        if key in NAMED_SETTINGS:
            for earlier in [k for k in options if k.startswith(key + ".")]:
                del options[earlier]
        options[key] = parse_value(value)
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


# other harnesses' names for settings of this one (SCLIP's, NACLIP's and mmseg's configs): the key ->
# (whose it is, what it is here with {} for the value, or None and what to know instead)
FOREIGN_KEYS: Dict[str, Tuple[str, Optional[str], str]] = {
    "model.slide_crop": ("SCLIP's", "protocol.crop_size={}", ""),
    "model.slide_stride": ("SCLIP's", "protocol.stride={}", ""),
    "model.prob_thd": ("SCLIP's", "protocol.prob_threshold={}", "with model.background_index"),
    "model.logit_scale": ("SCLIP's", "protocol.logit_scale={}", ""),
    "model.area_thd": ("SCLIP's", None, "it has no equivalent here: no class is dropped for a small predicted area"),
    "model.name_path": ("SCLIP's", "model.classnames={}", ""),
    "model.clip_path": ("SCLIP's", "model.clip.name={}", "or --model"),
    "model.pamr_steps": ("NACLIP's", "model.postprocess=pamr model.postprocess.num_iter={}", ""),
    "model.pamr_stride": ("NACLIP's", "model.postprocess=pamr model.postprocess.dilations={}", ""),
    "model.test_cfg.crop_size": ("mmseg's", "protocol.crop_size={}", "one number"),
    "model.test_cfg.stride": ("mmseg's", "protocol.stride={}", "one number"),
    "model.test_cfg.mode": ("mmseg's", None, "evaluation here always slides windows (protocol.crop_size, "
                                              "protocol.stride)"),
}


def _foreign_key(key: str, value: Any, source: str) -> Optional[ConfigError]:
    """The error that names this harness's setting for another harness's key, or None."""
    if key not in FOREIGN_KEYS:
        return None
    whose, ours, note = FOREIGN_KEYS[key]
    if ours is None:
        return ConfigError(f"{source} {key} is {whose}; {note}")
    if isinstance(value, (list, tuple)) and value and len(set(map(str, value))) == 1 and "crop" in key + ours:
        value = value[0]  # mmseg's (h, w) windows are square here
    shown = value if isinstance(value, str) or is_number(value) else repr(value)
    return ConfigError(f"{source} {key} is {whose} name; here it is --cfg-options {ours.format(shown)}"
                       + (f" ({note})" if note else ""))


# settings that name a component (a name or a dict), and a name to give as an example
NAMED_SETTINGS = {"model.postprocess": "pamr"}


def _named_settings() -> Dict[str, Callable[[Any], Any]]:
    """:data:`NAMED_SETTINGS` -> the component's full dict (its defaults filled in) from a name, a dict
    or None (off), so that ``KEY.PARAM=...`` can follow."""
    from ..segmentors.postprocess import postprocess_config

    return {"model.postprocess": postprocess_config}


def _lookup(plain: dict, key: str) -> Any:
    node: Any = plain
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _checked_value(plain: dict, key: str, value: Any, source: str) -> Any:
    """``value`` for the existing setting ``key`` (dotted) of ``plain``; unknown keys and wrong types raise."""
    node: Any = plain
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict):
            where = ".".join(parts[:depth])
            if where in NAMED_SETTINGS:
                raise ConfigError(f"{source} {key}: {where} is {node!r}; set {where}={NAMED_SETTINGS[where]} first")
            raise ConfigError(f"{source} {key}: {where} is {node!r}, not a dict of settings")
        if part not in node:
            foreign = _foreign_key(key, value, source)
            if foreign is not None:
                raise foreign
            where = ".".join(parts[:depth]) or "the config"
            raise ConfigError(f"{source} {key}={value!r}: unknown key {part!r} in {where}{suggest(part, node.keys())}")
        if depth < len(parts) - 1:
            node = node[part]
    old = node[parts[-1]]
    if not _compatible(old, value):
        raise ConfigError(f"{source} {key}={value!r}: expected {_a(type(old).__name__)} like {old!r}, "
                          f"got {_a(type(value).__name__)}")
    if is_int(old) and isinstance(value, float):
        return int(value)
    return value


def apply_cfg_options(cfg: Config, options: Dict[str, Any], source: str = "--cfg-options") -> None:
    """Apply ``KEY=VALUE`` overrides in order; every key must exist and every value keep its type.

    A setting that names a component (``model.postprocess``) takes a name, a dict or None, and
    becomes the component's full dict, whose parameters later keys can set
    (``model.postprocess=pamr model.postprocess.num_iter=5``); a new name or dict replaces the old
    one whole (mmengine would merge a dict into a dict, and refuses one where the config holds None).
    """
    named = _named_settings()  # of NAMED_SETTINGS
    for key, value in options.items():
        component = next((n for n in named if key == n or key.startswith(n + ".")), None)
        if component is not None and not isinstance(_lookup(cfg.to_dict(), component), (dict, type(None))):
            cfg.merge_from_dict({component: _replacing(named[component](_lookup(cfg.to_dict(), component)))})
        if key in named:
            _checked_value(cfg.to_dict(), key, None, source)  # the key exists; any name, dict or None
            value = named[key](value)
        else:
            value = _checked_value(cfg.to_dict(), key, value, source)
        cfg.merge_from_dict({key: _replacing(value)})


def _replacing(value: Any) -> Any:
    """A dict value that replaces the setting whole in ``merge_from_dict`` (mmengine's ``_delete_``)."""
    return {**value, "_delete_": True} if isinstance(value, dict) else value


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
