"""One experiment, resolved once: (dataset, method, protocol, model and weights, text).

:func:`resolve_experiment` reads a config file and the command line's choices and returns an
:class:`Experiment`: the runner builds the segmentor from it, and the results file and the history
record its sections. Nothing downstream merges or splits settings again.

Where each choice comes from, last one wins:

* **method**: the config's ``model.method``; a config named ``configs/<method>/<dataset>.py`` is
  ``configs/<dataset>.py`` with that method (such configs are resolved, not written); ``--method``;
  then ``--cfg-options model.method.KEY=...``. A method switched by name starts from its defaults.
* **protocol**: the config's ``protocol=dict(name=...)`` (plus any settings of its own), or
  ``--protocol``; the named protocol file's values for the dataset; then ``--cfg-options
  protocol.KEY=...``. Settings that end up differing from the named protocol's are recorded as
  ``overridden``: such a run is not that protocol's.
* **text**: ``model.classnames``, else the protocol's class-name file for the dataset
  (``configs/classnames/<protocol>/<dataset>.txt``), else ``configs/classnames/<dataset>.txt``; templates from
  ``model.templates``, else the protocol's set, else the method's own.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from mmengine.config import Config

from .. import protocols, resources
from ..datasets import catalog
from ..datasets.classnames import ClassNames, load_classnames
from ..errors import ConfigError, suggest
from ..models import METHODS, WeightsIdentity, build_method, weights_identity
from ..models.clip_loader import canonical_model_name, model_config_sha256
from ..protocols import ProtocolSettings
from ..results import experiment_hash, jsonable
from .config import apply_cfg_options, check_component, load_config


@dataclass(frozen=True)
class Experiment:
    """A resolved experiment (see the module docstring).

    Attributes:
        cfg: the resolved config: the protocol's settings filled in, the method dict complete, the
            command line's overrides applied (what the results record as ``config``).
        config_file: the file it was read from.
        dataset: the dataset's name (``dataset_name``).
        protocol: ``{"name": ..., every setting}`` (:class:`~clip_surgery_seg.protocols.ProtocolSettings`).
        overridden: the protocol settings that differ from the named protocol's own values.
        method: ``{"type": name, every parameter}``, defaults filled in.
        postprocess: the post-processing step's dict, or None.
        templates: the template set used (a name, or the list).
        classnames: the class-name file.
    """

    cfg: Config
    config_file: str
    dataset: str
    protocol: Dict[str, Any]
    overridden: Tuple[str, ...]
    method: Dict[str, Any]
    postprocess: Optional[Dict[str, Any]]
    templates: Union[str, List[str]]
    classnames: str

    @property
    def method_name(self) -> str:
        return self.method["type"]

    def class_names(self) -> ClassNames:
        """The class-name rows the model encodes (:attr:`classnames`), with the dataset's own class
        names as the names results and pictures show (a protocol's file may spell them its
        harness's way: SCLIP's VOC21 background line starts with "sky")."""
        names = load_classnames(self.classnames)
        own = resources.classnames_file(self.dataset)
        if own.is_file() and Path(self.classnames).resolve() != own.resolve():
            labels = load_classnames(own).classes
            if len(labels) == names.num_classes:
                names = dataclasses.replace(names, classes=labels)
        return names

    def weights(self) -> WeightsIdentity:
        clip = self.cfg.model.clip
        return weights_identity(clip.name, clip.get("pretrained"), clip.get("seed", 0))

    def segmentor_config(self) -> Dict[str, Any]:
        """The segmentor's arguments (``MODELS.build``): the model settings with every choice resolved."""
        model = self.cfg.model.to_dict()
        model.update(method=dict(self.method), postprocess=self.postprocess, templates=self.templates,
                     classnames=self.classnames, protocol=dict(self.protocol))
        return model

    def sections(self, precision: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        """The results file's ``protocol``, ``method``, ``model`` and ``text`` sections.

        ``precision``: what the image encoder ran in (``auto`` resolved on the device); default the
        setting itself.
        """
        model = self.cfg.model
        params = {k: v for k, v in self.method.items() if k != "type"}
        identity = self.weights().as_dict()
        return jsonable({
            "protocol": {**self.protocol, "overridden": list(self.overridden)},
            "method": {"name": self.method_name, "params": params,
                       "feature_surgery": model.get("feature_surgery"),
                       "similarity_normalize": model.get("similarity_normalize"),
                       "postprocess": self.postprocess},
            "model": {**identity, "quick_gelu": model.clip.get("quick_gelu"),
                      "config_sha256": model_config_sha256(model.clip.name),
                      "precision": precision or model.get("precision")},
            "text": {"templates": self.templates, "classnames": resources.display_path(self.classnames),
                     "classnames_sha256": _file_rows_sha256(self.classnames)},
        })

    def dataset_encoding(self) -> Dict[str, Any]:
        """The dataset settings that change the numbers (its layout and encoding, not where it lives)."""
        dataset = {k: v for k, v in self.cfg.test_dataloader.dataset.to_dict().items() if k != "data_root"}
        return jsonable({"name": self.dataset, **dataset, "background_index": self.cfg.model.get("background_index"),
                         "evaluator": self.cfg.get("test_evaluator")})

    def config_hash(self) -> str:
        """sha256 of what determines the numbers: the sections (precision as set, not as run) and the
        dataset's encoding. Files count by their content, not their path: the same experiment in
        another checkout or folder has the same hash."""
        sections = self.sections()
        del sections["text"]["classnames"]  # its rows' sha256 stays
        if sections["model"]["config_sha256"]:
            sections["model"]["name"] = Path(sections["model"]["name"]).name
        if sections["model"]["sha256"]:
            sections["model"]["pretrained"] = Path(sections["model"]["pretrained"]).name
        return experiment_hash({"dataset_encoding": self.dataset_encoding(), **sections})


def _file_rows_sha256(path: str) -> Optional[str]:
    try:
        rows = load_classnames(path).rows
    except Exception:  # noqa: BLE001 - an unreadable file is reported when the run reads it
        return None
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


# --- resolution --------------------------------------------------------------------------------------

def locate_config(path: str) -> Tuple[Path, Optional[str]]:
    """The config file a user named, and the method the name implies.

    ``configs/ade20k.py``, ``ade20k`` and any path of a config file name the file itself; a dataset
    name or alias the catalogue knows, in any case (``ADE20K``, ``configs/ADE20K.py``, ``ade``), its
    config; ``configs/<method>/<dataset>.py`` (or ``<method>/<dataset>``, the method in any case)
    names ``configs/<dataset>.py`` with that method. Anything else is an error with the closest names.
    """
    found = resources.find_config(path)
    if found.is_file():
        return found, None
    parts = Path(path).with_suffix("").parts if path.endswith(".py") else Path(path).parts
    if parts[:1] == ("configs",):
        parts = parts[1:]
    if len(parts) == 2 and parts[0].lower() in METHODS:
        base = _dataset_config(parts[1])
        if base is not None:
            return base, parts[0].lower()
    elif len(parts) == 1:
        base = _dataset_config(parts[0])
        if base is not None:
            return base, None
    raise ConfigError(f"config file {path} does not exist{_config_hint(path)}")


def _dataset_config(name: str) -> Optional[Path]:
    """``configs/<dataset>.py`` of a dataset name or alias in any case, if there is one."""
    try:
        dataset = catalog.resolve(name)
    except ConfigError:
        return None
    found = resources.find_config(dataset)
    return found if found.is_file() else None


def _config_hint(path: str) -> str:
    """'; did you mean ...?' with the closest config names, spelt as ``path`` is (``configs/x.py`` or
    ``x``), or the list of configs."""
    datasets = [Path(k).stem for k in resources.known_configs() if k.count("/") == 1]
    names = datasets + [f"{m}/{d}" for m in METHODS for d in datasets]
    full = path.startswith("configs/") or path.endswith(".py")
    shown = {name.lower(): f"configs/{name}.py" if full else name for name in names}
    given = path.lower()
    if full:
        given = given[len("configs/"):] if given.startswith("configs/") else given
        given = given[:-len(".py")] if given.endswith(".py") else given
    close = difflib.get_close_matches(given, list(shown), n=3, cutoff=0.5)  # case does not count
    if close:
        return f"; did you mean {', '.join(shown[k] for k in close)}?"
    return f" (configs: {', '.join(resources.known_configs()[:8])} ...)"


def default_work_dir(config_path: str) -> Path:
    """``work_dirs/<config path below configs/, without .py>``; a name without ``.py`` as given
    (``ade20k``, ``sclip/voc21``); any other file by its stem."""
    path = Path(config_path)
    parts = path.resolve().with_suffix("").parts
    if "configs" in parts:
        parts = parts[len(parts) - parts[::-1].index("configs"):]
    elif path.suffix != ".py" and not path.is_absolute():
        parts = path.parts
    else:
        parts = (path.stem,)
    return Path("work_dirs").joinpath(*parts)


def resolve_experiment(config: str, *, protocol: Optional[str] = None, method: Optional[str] = None,
                       cfg_options: Optional[Dict[str, Any]] = None, model: Optional[str] = None,
                       pretrained: Any = None, precision: Optional[str] = None,
                       data_root: Optional[str] = None, resize: Optional[str] = None) -> Experiment:
    """The experiment of config file ``config`` with the command line's choices (see the module doc).

    ``pretrained``: None keeps the config's; ``"none"`` means random weights. ``resize``: the
    protocol's resize (``mmseg`` | ``device``; None keeps the protocol's): a setting like any other,
    recorded as overridden when it differs from the protocol's.

    Raises:
        ConfigError: a missing file, an unknown protocol, method, setting or component, a value of
            the wrong type or out of range -- before any data is read or any model built.
    """
    from mmseg.registry import DATASETS, METRICS, MODELS

    from .. import registry  # noqa: F401  (components registered)
    from ..segmentors.postprocess import postprocess_config

    path, implied = locate_config(config)
    if implied and method and method != implied:
        raise ConfigError(f"{config} is configs/{path.name} with method {implied}, and --method {method} asks for "
                          f"another; pass configs/{path.name} --method {method}")
    cfg = load_config(str(path))
    for key in ("model", "test_dataloader", "dataset_name", "protocol"):
        if key not in cfg:
            raise ConfigError(f"config {config} has no {key!r}; start from one of the dataset configs in configs/")
    named = _apply_protocol(cfg, protocol, config)
    if resize is not None:
        cfg.protocol.resize = resize
    if method or implied:
        apply_method(cfg, method or implied)
    options = dict(cfg_options or {})
    cfg.model.method = _checked_method(cfg, config, {})  # every parameter settable by --cfg-options
    apply_cfg_options(cfg, options)
    if model is not None:
        cfg.model.clip.name = model
    cfg.model.clip.name = canonical_model_name(cfg.model.clip.name)
    if precision is not None:
        cfg.model.precision = precision
    if pretrained is not None:
        cfg.model.clip.pretrained = None if str(pretrained).lower() == "none" else pretrained
    dataset = cfg.test_dataloader.dataset
    if data_root is not None:
        dataset.data_root = os.path.join(data_root, cfg.get("data_subdir", ""))
    dataset.data_root = os.path.abspath(dataset.data_root)
    method_dict = _checked_method(cfg, config, options)
    cfg.model.method = method_dict
    settings = ProtocolSettings.from_dict(cfg.protocol.to_dict(), f"{config}: protocol")
    if cfg.model.get("classnames") is None:  # the protocol's words for the dataset, else the dataset's own
        own = protocols.classnames_file(settings.classnames, cfg.dataset_name)
        cfg.model.classnames = str(own or resources.classnames_file(cfg.dataset_name))
    templates = _templates(cfg, settings, method_dict)
    postprocess = postprocess_config(cfg.model.get("postprocess"))
    experiment = Experiment(cfg=cfg, config_file=str(path), dataset=cfg.dataset_name,
                            protocol=settings.as_dict(),
                            overridden=tuple(k for k, v in settings.as_dict().items() if named.get(k) != v),
                            method=method_dict, postprocess=postprocess, templates=templates,
                            classnames=str(cfg.model.classnames))
    check_component(experiment.segmentor_config(), MODELS, "model", config)
    check_component(dataset, DATASETS, "dataset", config)
    check_component(cfg.get("test_evaluator", dict(type="SegConfusionMetric")), METRICS, "evaluator", config)
    return experiment


def _apply_protocol(cfg: Config, name: Optional[str], source: str) -> Dict[str, Any]:
    """Fill ``cfg.protocol`` with the named protocol's values for the dataset, then the config's own
    settings; returns the named protocol's values (what ``overridden`` compares with)."""
    declared = cfg.protocol.to_dict() if hasattr(cfg.protocol, "to_dict") else cfg.protocol
    if isinstance(declared, str):
        declared = {"name": declared}
    if not isinstance(declared, dict):
        raise ConfigError(f"{source}: protocol must be dict(name=...), e.g. protocol = dict(name='sclip')")
    name = name or declared.get("name")
    if not name:
        raise ConfigError(f"{source}: protocol has no name; set protocol = dict(name=...) (protocols: "
                          f"{', '.join(protocols.available())}) or pass --protocol")
    named = protocols.values(name, cfg.dataset_name)
    own = {k: v for k, v in declared.items() if k != "name"}
    unknown = [k for k in own if k not in named]
    if unknown:
        raise ConfigError(f"{source}: unknown protocol setting {unknown[0]!r}{suggest(unknown[0], named)}")
    cfg.protocol = {**named, **own, "name": name}
    return named


def apply_method(cfg: Config, name: str) -> None:
    """Replace the whole ``model.method`` by method ``name`` with its defaults."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}{suggest(name, METHODS)} (methods: {', '.join(METHODS)})")
    cfg.model.method = METHODS[name]().config()


def _checked_method(cfg: Config, source: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """The method dict with every default filled in; unknown names and parameters are refused."""
    spec = cfg.model.get("method", "clip_surgery")
    try:
        return build_method(spec.to_dict() if hasattr(spec, "to_dict") else spec).config()
    except ConfigError as err:
        switched = options.get("model.method.type")
        hint = (f"; to switch methods use --method {switched}, which replaces the whole method dict"
                if switched is not None else "")
        raise ConfigError(f"{source}: {err}{hint}") from None


def _templates(cfg: Config, settings: ProtocolSettings, method: Dict[str, Any]) -> Union[str, List[str]]:
    """The template set used: the model's, else the protocol's, else the method's own."""
    own = cfg.model.get("templates")
    if own is not None and settings.templates is not None:
        raise ConfigError("templates set both in model and in protocol; set them in one place (e.g. "
                          "--cfg-options protocol.templates=... with model.templates=None)")
    chosen = next((t for t in (own, settings.templates) if t is not None), None)
    if chosen is None:
        chosen = METHODS[method["type"]].default_templates
    return list(chosen) if isinstance(chosen, (list, tuple)) else chosen

