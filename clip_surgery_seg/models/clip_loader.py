"""Build an open_clip CLIP and its tokenizer from a model name or config file and a weights source.

``pretrained`` may be

* an open_clip tag (``"openai"``, ``"laion2b_s34b_b88k"``, ...): downloaded by open_clip on first use;
* a local file: an OpenAI checkpoint (TorchScript archive, or a plain state dict with OpenAI's key
  names and its ``input_resolution``/``context_length``/``vocab_size`` entries, as the CLIP repo's
  ``.pt`` files hold) -- built the way open_clip builds OpenAI models (QuickGELU, shapes read from the
  weights) -- or an open_clip checkpoint, loaded into the architecture ``name`` describes;
* ``None``: random weights, drawn from a fixed seed so that runs are reproducible.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import pickle
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple, Union

import torch
from torch import nn
from ..errors import ConfigError, WeightsError, suggest
from ..named import open_clip_spelling

logger = logging.getLogger("clip_surgery_seg")
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")



@dataclass(frozen=True)
class WeightsIdentity:
    """What identifies the weights of a run: recorded in results and keyed into caches."""

    model: str
    pretrained: Optional[str]  # tag, file path, or None for random weights
    sha256: Optional[str] = None  # of the file, when ``pretrained`` is a file
    seed: Optional[int] = None  # when weights are random

    def as_dict(self) -> dict:
        return {"name": self.model, "pretrained": self.pretrained, "sha256": self.sha256,
                "seed": self.seed}

    def key(self) -> str:
        """A short string that changes whenever the weights may change."""
        if self.sha256:  # the weights file's content, and the model config's (a JSON file by its content)
            return f"{self.model_key}:sha256={self.sha256}"
        if self.pretrained is None:
            return f"{self.model_key}:random-seed={self.seed}"
        return f"{self.model_key}:{self.pretrained}"

    @property
    def model_key(self) -> str:
        sha = model_config_sha256(self.model)
        return f"{Path(self.model).name}:{sha[:16]}" if sha else self.model


def _sha256(path: Union[str, Path], chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Union[str, Path]) -> str:
    """sha256 of a file; memoised on (path, size, mtime) since weights files are large."""
    st = os.stat(path)
    return _sha256_of_version(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of_version(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(path)


def model_config_sha256(name: str) -> Optional[str]:
    """sha256 of a model-config JSON file's content (the architecture is what the file says now, not
    what its path said before); None for an open_clip model name or a file that is not there."""
    return file_sha256(name) if _is_config_file(name) and os.path.isfile(name) else None


def weights_identity(name: str, pretrained: Optional[str], seed: int = 0) -> WeightsIdentity:
    """The identity of the weights ``build_clip(name, pretrained)`` loads."""
    if pretrained is None:
        return WeightsIdentity(str(name), None, seed=seed)
    if os.path.isfile(pretrained):
        return WeightsIdentity(str(name), str(pretrained), sha256=file_sha256(pretrained))
    return WeightsIdentity(str(name), str(pretrained))


def _is_config_file(name: str) -> bool:
    return str(name).endswith(".json")


def canonical_model_name(name: str) -> str:
    """open_clip's spelling of a model name: OpenAI's ``ViT-B/16`` and ``ViT-L/14@336px`` are
    open_clip's ``ViT-B-16`` and ``ViT-L-14-336`` (logged once when it differs)."""
    import open_clip

    name = str(name)
    if _is_config_file(name) or open_clip.get_model_config(name) is not None:
        return name
    spelled = open_clip_spelling(name)
    if spelled != name and open_clip.get_model_config(spelled) is not None:
        logger.info("model %s is open_clip's %s", name, spelled)
        return spelled
    return name


def load_model_config(name: str) -> dict:
    """The open_clip model config of a built-in name or a JSON file (``model_cfg`` unwrapped)."""
    import open_clip

    if _is_config_file(name):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"model config {path} does not exist; pass an open_clip model "
                                    "name (e.g. ViT-B-16) or the path of a model-config JSON file")
        try:
            cfg = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"model config {path} is not valid JSON: {err}") from err
        cfg = cfg.get("model_cfg", cfg)
        if not {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg):
            raise ConfigError(f"model config {path} needs embed_dim, vision_cfg and text_cfg "
                             "(the open_clip model-config format)")
        return cfg
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        hint = suggest(name, open_clip.list_models()) or "; see open_clip.list_models()"
        raise ConfigError(f"unknown model name {name!r}{hint}")
    return cfg


def _build_from_config(cfg: dict, quick_gelu: Optional[bool]) -> nn.Module:
    from open_clip.model import CLIP, CustomTextCLIP

    cfg = dict(cfg)
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    if quick_gelu is not None:
        cfg["quick_gelu"] = quick_gelu
    cls = CustomTextCLIP if custom_text else CLIP
    return cls(**cfg)


def _tokenizer_for(name: str, cfg: dict) -> Callable:
    import open_clip
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    if not _is_config_file(name):
        return open_clip.get_tokenizer(name)
    text_cfg = cfg.get("text_cfg", {})
    context_length = text_cfg.get("context_length", 77)
    if text_cfg.get("hf_tokenizer_name"):
        return HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=context_length)
    return SimpleTokenizer(context_length=context_length, **text_cfg.get("tokenizer_kwargs", {}))


def _read_checkpoint(path: Path) -> Tuple[dict, bool]:
    """Read a weights file; returns (state_dict, is_openai_format).

    Plain state dicts are read with ``weights_only=True`` (no pickled code runs); a TorchScript
    archive is only ever loaded from a path the user gave; a ``.safetensors`` file is read as such.
    """
    if path.suffix == ".safetensors":
        return _checked_state_dict(_read_safetensors(path), path)
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        with zipfile.ZipFile(path) as zf:
            is_torchscript = any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
        if is_torchscript:
            try:
                module = torch.jit.load(str(path), map_location="cpu")
            except Exception as err:  # noqa: BLE001 - any failure means "not a usable archive"
                raise WeightsError(f"weights file {path} looks like a TorchScript archive but could "
                                   f"not be loaded ({err}); re-download it") from err
            # a traced or scripted module also carries buffers that are not weights
            return {k: v for k, v in module.state_dict().items() if not k.endswith("attn_mask")}, True
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        # torch's own message for a refused pickle advises weights_only=False, which we never do
        detail = ("not a plain tensor checkpoint" if isinstance(err, pickle.UnpicklingError)
                  else f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}")
        raise WeightsError(
            f"weights file {path} is not a readable CLIP checkpoint ({detail}); pass an open_clip tag "
            "such as 'openai', an OpenAI .pt file or an open_clip checkpoint") from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return _checked_state_dict(obj, path)


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is not a readable safetensors file (it is empty); re-download it")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise WeightsError(f"weights file {path} is not a readable safetensors file ({first}); re-download it, "
                           "or pass an OpenAI .pt file or an open_clip checkpoint") from err


def _checked_state_dict(obj: object, path: Path) -> Tuple[dict, bool]:
    """(state dict, is_openai_format) once it is known to hold CLIP weights."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise WeightsError(f"weights file {path} does not hold a state dict; pass an OpenAI .pt file "
                           "or an open_clip checkpoint")
    if next(iter(obj)).startswith("module."):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    if not any(k.startswith("visual.") for k in obj):
        raise WeightsError(f"weights file {path} is not a CLIP checkpoint (no 'visual.*' weights)")
    return obj, any(k in obj for k in _OPENAI_EXTRA_KEYS)


def _arch_signature(model: nn.Module) -> dict:
    visual = model.visual
    sig: dict = {"embed_dim": model.text_projection.shape[-1]
                 if isinstance(getattr(model, "text_projection", None), torch.Tensor) else None}
    if hasattr(visual, "conv1") and hasattr(visual, "transformer"):
        sig.update(kind="vit", width=visual.conv1.out_channels, patch=visual.conv1.kernel_size[0],
                   layers=len(visual.transformer.resblocks))
    elif hasattr(visual, "attnpool"):
        sig.update(kind="resnet", width=visual.layer1[0].conv1.in_channels,
                   layers=tuple(len(getattr(visual, f"layer{i}")) for i in range(1, 5)))
    return sig


def _load_openai_state_dict(state_dict: dict, name: str, path: Path,
                            quick_gelu: Optional[bool]) -> nn.Module:
    from open_clip.model import build_model_from_openai_state_dict

    sd = dict(state_dict)
    try:
        model = build_model_from_openai_state_dict(
            sd, quick_gelu=True if quick_gelu is None else quick_gelu, cast_dtype=torch.float32)
    except (KeyError, RuntimeError, AssertionError) as err:
        raise WeightsError(f"weights file {path} has OpenAI key names but is not a complete CLIP "
                           f"state dict ({type(err).__name__}: {err})") from err
    # the builder stores weights in fp16 as OpenAI did; load them again in full precision
    model = model.float()
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in _OPENAI_EXTRA_KEYS})
    try:
        expected = _arch_signature(_build_from_config(load_model_config(name), quick_gelu=None))
    except ConfigError:
        return model
    got = _arch_signature(model)
    if expected != got:
        raise WeightsError(f"weights file {path} holds a {got} model but --model {name} is a "
                           f"{expected} model; pass the matching model name")
    return model


def build_clip(name: str, pretrained: Optional[str] = None, device: Union[str, torch.device] = "cpu",
               quick_gelu: Optional[bool] = None, seed: int = 0) -> Tuple[nn.Module, Callable]:
    """Build a CLIP model (eval mode, fp32) and its tokenizer.

    Args:
        name: an open_clip model name (``ViT-B-16``, ``RN50``, ...) or the path of an open_clip
            model-config JSON file.
        pretrained: an open_clip tag, a local weights file, or None for random weights.
        device: where the model is put.
        quick_gelu: force QuickGELU on (True) or off (False); None picks what the weights need
            (QuickGELU for OpenAI weights, the config's choice otherwise).
        seed: the seed random weights are drawn from (``pretrained=None`` only).

    Returns:
        ``(clip_model, tokenizer)``; the tokenizer maps a list of strings to (n, context) tokens.
    """
    import open_clip

    name = canonical_model_name(name)
    cfg = load_model_config(name)
    tokenizer = _tokenizer_for(name, cfg)

    if pretrained is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build_from_config(cfg, quick_gelu)
    elif os.path.exists(pretrained) or os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        path = Path(pretrained)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist; pass an existing file, an "
                               "open_clip tag such as 'openai', or none for random weights")
        state_dict, is_openai = _read_checkpoint(path)
        if is_openai:
            return _load_openai_state_dict(state_dict, name, path, quick_gelu).to(device).eval(), tokenizer
        model = _build_from_config(cfg, quick_gelu)
        try:
            open_clip.load_checkpoint(model, str(path), strict=True)
        except (RuntimeError, KeyError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise WeightsError(f"weights file {path} does not fit the {name} architecture ({first}); "
                               "pass the model name the checkpoint was trained with") from err
    else:
        if _is_config_file(name):
            raise WeightsError(f"pretrained tag {pretrained!r} needs a built-in open_clip model name, "
                             f"not the config file {name}; pass a weights file instead")
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(name)
            raise WeightsError(f"unknown pretrained tag {pretrained!r} for {name}; known tags: "
                             f"{', '.join(tags) or 'none'} (or pass a weights file, or none)")
        force_quick_gelu = tag_cfg.get("quick_gelu", False) if quick_gelu is None else quick_gelu
        model = _create_pretrained(open_clip, name, pretrained, tag_cfg, force_quick_gelu)
    return model.to(device).eval(), tokenizer


# --- weights downloaded by open_clip ----------------------------------------------------------------

HOST_TIMEOUT_S = 3.0  # how long the weights host may take to accept a connection before we say "no network"
_HUB_WAY_OUT = "pass --pretrained FILE, or set HF_HUB_OFFLINE=1 with them in the HF cache"


@dataclass(frozen=True)
class WeightsSource:
    """Where open_clip fetches a tag's weights: a Hugging Face hub repository (``hub_files`` in the
    order open_clip tries them) or a URL (cached in ``~/.cache/clip``)."""

    hub_repo: Optional[str] = None
    hub_files: Tuple[str, ...] = ()
    url: Optional[str] = None

    def cached(self, cache_dir: Optional[str] = None) -> Optional[str]:
        """The local copy open_clip would use without downloading, if there is one (``cache_dir``: the
        hub's cache folder, default its own)."""
        if self.hub_repo:
            from huggingface_hub import try_to_load_from_cache

            for filename in self.hub_files:
                found = try_to_load_from_cache(self.hub_repo, filename, cache_dir=cache_dir)
                if isinstance(found, str):  # not None, nor the "known to be missing" marker
                    return found
            return None
        path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(str(self.url)))
        return path if os.path.isfile(path) else None

    def host(self) -> Tuple[str, int]:
        """The host and port a download connects to first: the hub endpoint (``HF_ENDPOINT``) or the
        URL's host, or the proxy that the environment names for it."""
        from urllib.parse import urlparse
        from urllib.request import getproxies, proxy_bypass

        if self.hub_repo:
            from huggingface_hub import constants

            url = urlparse(constants.ENDPOINT)
        else:
            url = urlparse(str(self.url))
        proxy = getproxies().get(url.scheme)
        if proxy and not proxy_bypass(url.hostname or ""):
            url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def weights_source(tag_cfg: dict) -> Optional[WeightsSource]:
    """Where open_clip fetches the weights of a pretrained tag (its ``get_pretrained_cfg``): the hub when
    the tag has a repository and huggingface_hub is installed (open_clip prefers it), else the URL;
    None for a tag whose weights are a local file."""
    if tag_cfg.get("file"):  # open_clip reads it as it is
        return None
    hub = tag_cfg.get("hf_hub", "")
    if hub and _has_hub():
        repo, filename = os.path.split(hub)  # 'org/repo/' means open_clip's default file name
        filename = filename or "open_clip_pytorch_model.bin"
        safe = []  # open_clip tries a .safetensors twin first
        if filename == "open_clip_pytorch_model.bin":
            safe.append("open_clip_model.safetensors")
        elif filename.endswith((".bin", ".pth")):
            safe.append(filename[:-4] + ".safetensors")
        return WeightsSource(hub_repo=repo, hub_files=(*safe, filename))
    if tag_cfg.get("url"):
        return WeightsSource(url=tag_cfg["url"])
    return None


def _has_hub() -> bool:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return False
    return True


def _hub_offline() -> bool:
    """huggingface_hub's offline mode: ``HF_HUB_OFFLINE=1`` as the hub read it at import, or as it is now."""
    from huggingface_hub import constants

    check = getattr(constants, "is_offline_mode", None)
    at_import = check() if check is not None else getattr(constants, "HF_HUB_OFFLINE", False)
    return bool(at_import) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _hub_cache_dir() -> Optional[str]:
    """The hub's cache folder as the environment names it now (``HF_HUB_CACHE``, ``HF_HOME``); None: the
    hub's own default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None


def unreachable(host: str, port: int, timeout: float = HOST_TIMEOUT_S) -> Optional[str]:
    """None when a TCP connection to ``host:port`` opens within ``timeout`` seconds; else why not, in
    a few words. One quick look instead of a download library's retries (tens of seconds)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"cannot resolve {host}"
    except socket.timeout:
        return f"{host}:{port} did not answer within {timeout:g} s"
    except ConnectionRefusedError:
        return f"{host}:{port} refused the connection"
    except OSError as err:
        return f"cannot connect to {host}:{port}: {err.strerror or err}"


@contextlib.contextmanager
def _quiet_download() -> Iterator[None]:
    """While open_clip downloads: no retry warnings from huggingface_hub and no log line of open_clip's
    own about a failure (the caller says it in one line). Standard logging settings, restored after."""
    hub = logging.getLogger("huggingface_hub")
    root = logging.getLogger()
    hub_level = hub.level
    hub.setLevel(logging.ERROR)
    # open_clip logs through the root logger with logging.error(), which would also give the root
    # logger a stderr handler for good when it has none; a filter drops its records while this lasts
    guard = logging.NullHandler() if not root.handlers else None

    def drop(record: logging.LogRecord) -> bool:
        return False

    if guard is not None:
        root.addHandler(guard)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        if guard is not None:
            root.removeHandler(guard)
        hub.setLevel(hub_level)


def _create_pretrained(open_clip, name: str, tag: str, tag_cfg: dict, force_quick_gelu: bool) -> nn.Module:
    """open_clip's model with the weights of ``tag``, downloaded on first use.

    Without network that is one short line within seconds: when the weights are not cached, the host
    they come from is tried once (:func:`unreachable`) before open_clip is asked; when they are cached
    but the hub cannot be reached, open_clip loads the cached file itself (the hub client would retry
    for tens of seconds before falling back to its cache). A download that fails for another reason is
    one line too.
    """
    source = weights_source(tag_cfg)
    weights = tag
    if source is not None:
        cached = source.cached(_hub_cache_dir() if source.hub_repo else None)
        offline = bool(source.hub_repo) and _hub_offline()
        if cached is None:
            if offline:
                raise WeightsError(f"cannot load the {name} {tag!r} weights: HF_HUB_OFFLINE is set and they are not "
                                   "in the HF cache; pass --pretrained FILE, or download them once with network")
            why = unreachable(*source.host())
            if why is not None:
                way_out = (_HUB_WAY_OUT if source.hub_repo
                           else "pass --pretrained FILE, or put the file in ~/.cache/clip")
                raise WeightsError(f"cannot download the {name} {tag!r} weights (no network: {why}); {way_out}")
        elif source.hub_repo:  # the hub client looks online first even with a cache (a cached URL is used as is)
            why = "HF_HUB_OFFLINE is set" if offline else unreachable(*source.host())
            if why is not None:
                logger.info("weights: %s; using the cached %s", why, cached)
                weights = cached
    try:
        with _quiet_download():
            return open_clip.create_model(name, pretrained=weights, force_quick_gelu=force_quick_gelu)
    except (OSError, RuntimeError) as err:
        text = " ".join(str(err).split())
        if isinstance(err, RuntimeError) and not text.startswith("Failed to download"):
            raise
        cause = text.rpartition("Last error: ")[2] or text
        cause = cause if len(cause) <= 100 else cause[:100].rsplit(" ", 1)[0] + " ..."
        raise WeightsError(f"cannot download the {name} {tag!r} weights ({cause}); {_HUB_WAY_OUT}") from None
class SharedCLIP:
    """One CLIP, built once and handed to every segmentor that asks for the same one.

    ``tools/reproduce.py`` evaluates several methods on a dataset; no method changes a weight, so one
    model serves them all. The caller creates one of these and passes it to each segmentor it
    builds (``shared_clip=``); a request with other arguments than the model held replaces it (one
    model in memory at a time). Nothing is shared that is not passed explicitly.

    Attributes:
        loads: how many times a model was built (for checks and benchmarks).
    """

    def __init__(self) -> None:
        self._key: Optional[str] = None
        self._built: Optional[Tuple[nn.Module, Callable]] = None
        self.loads = 0

    def get(self, name: str, pretrained: Optional[str] = None, quick_gelu: Optional[bool] = None,
            seed: int = 0) -> Tuple[nn.Module, Callable]:
        """``build_clip(name, pretrained, quick_gelu=..., seed=...)``, built on the first request only."""
        key = json.dumps([str(name), pretrained, quick_gelu, seed])
        if key != self._key:
            self._built = None  # free the previous model before building the next
            self._built = build_clip(name, pretrained, quick_gelu=quick_gelu, seed=seed)
            self._key = key
            self.loads += 1
        return self._built
