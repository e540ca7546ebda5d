"""CLIPSurgerySegmentor: training-free segmentation with a frozen CLIP (docs/method.md §5)."""
from __future__ import annotations

import contextlib
from typing import Any, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS

from ..datasets.classnames import ClassNames, load_classnames
from ..models import FEATURE_SURGERY_MODES, SharedCLIP, SurgeryCLIP, build_clip, feature_surgery, weights_identity
from ..models import TextContext
from .data_preprocessor import CLIP_MEAN, CLIP_STD
from .postprocess import PostprocessSpec, build_postprocess
from .sliding import ScratchBuffers, WindowBatcher, keep_ratio_size, resize_bilinear, slide_logits
from .text_embeddings import cached_text_embeddings
from ..errors import ConfigError, NumericalError
from ..protocols import ProtocolSettings

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
# precision="auto": per device type, else fp32. fp16 because its predictions agreed with fp32 on
# 99.87 % of pixels, bf16's on 99.16 % only (< 99.5 %): random ViT-B/16, CPU autocast,
# benchmarks/bench_segmentor.py; rerun that check on a GPU before relying on it there
AUTO_PRECISION = {"cuda": "fp16"}
SIMILARITY_NORMALIZE = ("none", "minmax")


@MODELS.register_module()
class CLIPSurgerySegmentor(BaseSegmentor):
    """CLIP Surgery as an mmseg segmentor; inference only.

    Per batch of images: resize to the test scale, slide ``crop_size`` windows with ``stride``
    (windows of all images batched, ``window_batch_size`` at a time), image tokens -> similarity to
    every class-name row -> bilinear upsample -> logit canvas -> original size -> the class of the best
    row (a class scores the max over its synonyms), and, with ``prob_threshold``, low-confidence
    pixels -> ``background_index`` (:meth:`labels_from_logits`).

    Args:
        clip: ``dict(name=..., pretrained=..., quick_gelu=None)`` for :func:`build_clip`.
        classnames: class-name file (one class per line, comma-separated synonyms).
        method: the image-token method, ``dict(type=name, **params)`` (docs/method.md §1-2, docs/methods.md): ``clip_surgery``
            (default, ``depth``, ``new_path_attention``, ``resnet_norm``), ``vanilla``, ``maskclip``,
            ``gem``, ``sclip``, ``naclip``, ``clearclip``, ``sc_clip``; see :mod:`clip_surgery_seg.models.methods`.
        feature_surgery: ``none`` | ``redundant`` | ``weighted`` (docs/method.md §4).
        templates: named template set or list of templates (docs/method.md §3); None (default): the
            protocol's set if it fixes one, else the method's own (``default_templates``: what its
            released code uses).
        postprocess: optional refinement of each image's logits at its original size, e.g.
            ``dict(type='pamr', num_iter=10, dilations=(8, 16))`` (:mod:`.postprocess`); None: none.
        protocol: the evaluation settings (:class:`~clip_surgery_seg.protocols.ProtocolSettings`, or a
            dict of them): test scale, sliding window, and the background threshold (a pixel whose top
            class probability -- softmax over all rows of ``logit_scale`` x logits; None: CLIP's own
            scale -- is below ``prob_threshold`` becomes ``background_index``).
        window_batch_size: windows per forward pass (halved on GPU out-of-memory), or ``"auto"``:
            from the free memory on a GPU, a fixed size on a CPU (``sliding.auto_batch_size``).
        similarity_normalize: ``none`` | ``minmax`` (per class over each window's tokens).
        background_index: the background class (a dataset that scores one), or None.
        precision: ``fp32`` | ``fp16`` | ``bf16`` (autocast of the image encoder) | ``auto``
            (:data:`AUTO_PRECISION`: fp16 on a GPU, fp32 on a CPU; see ``compute_precision``).
        text_cache_dir: where text embeddings are cached (None: the user cache).
        shared_clip: build the CLIP through this :class:`~clip_surgery_seg.models.SharedCLIP` (one
            model for several segmentors) instead of loading it anew; not a config setting.
    """

    def __init__(self, clip: dict, classnames: Union[str, Sequence[str]],
                 method: Union[str, dict] = "clip_surgery", feature_surgery: str = "none",
                 templates: Union[str, Sequence[str], None] = None, postprocess: PostprocessSpec = None,
                 protocol: Union[ProtocolSettings, Mapping[str, Any], None] = None,
                 window_batch_size: Union[int, str] = 32, similarity_normalize: str = "none",
                 background_index: Optional[int] = None, precision: str = "fp32",
                 text_cache_dir: Optional[str] = None, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, shared_clip: Optional[SharedCLIP] = None) -> None:
        if not isinstance(protocol, ProtocolSettings):
            protocol = ProtocolSettings.from_dict(dict(protocol or {}))
        if data_preprocessor is None:  # the protocol's resize: on the decoded image, or here on the device
            data_preprocessor = dict(type="CLIPSegDataPreProcessor", mean=mean, std=std, resize=protocol.resize,
                                     test_scale=(protocol.max_long_side, protocol.short_side))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        _check_choice("feature_surgery", feature_surgery, FEATURE_SURGERY_MODES)
        _check_choice("similarity_normalize", similarity_normalize, SIMILARITY_NORMALIZE)
        _check_choice("precision", precision, (*PRECISIONS, "auto"))
        if protocol.prob_threshold is not None and background_index is None:
            raise ConfigError(f"prob_threshold={protocol.prob_threshold} needs a background class for low-confidence "
                              "pixels: set model.background_index (its 0-based line in the class-name file), or "
                              "protocol.prob_threshold=None for a dataset without background")

        self.classes: ClassNames = (load_classnames(classnames) if isinstance(classnames, str)
                                    else ClassNames.from_lines(list(classnames)))
        if background_index is not None and not 0 <= background_index < self.classes.num_classes:
            source = classnames if isinstance(classnames, str) else "the class list"
            raise ConfigError(f"background_index={background_index} is not a class of {source} "
                              f"({self.classes.num_classes} classes); set it to the 0-based line of the background class")
        clip_cfg = dict(clip)
        clip_model, tokenizer = shared_clip.get(**clip_cfg) if shared_clip is not None else build_clip(**clip_cfg)
        self.surgery = SurgeryCLIP(clip_model, tokenizer, method=method)
        self.postprocess = build_postprocess(postprocess)
        identity = weights_identity(clip_cfg["name"], clip_cfg.get("pretrained"), clip_cfg.get("seed", 0))
        self.weights = identity
        self._weights_key = f"{identity.key()}:quick_gelu={clip_cfg.get('quick_gelu')}"
        self.feature_surgery_mode = feature_surgery
        self.templates = next(t for t in (templates, protocol.templates, self.surgery.method.default_templates)
                              if t is not None)
        self.protocol = protocol
        self.short_side, self.max_long_side = protocol.short_side, protocol.max_long_side
        self.crop_size, self.stride = protocol.crop_size, protocol.stride
        self.batcher = WindowBatcher(window_batch_size, self._bytes_per_window)
        self._scratch = ScratchBuffers()  # large per-image CPU buffers, reused by predict()
        self.similarity_normalize = similarity_normalize
        self.logit_scale = protocol.logit_scale
        self.prob_threshold = protocol.prob_threshold
        self.area_threshold = protocol.area_threshold
        self.background_index = background_index
        self.precision = precision
        self.text_cache_dir = text_cache_dir
        self._text: Optional[torch.Tensor] = None
        self._redundant: Optional[torch.Tensor] = None
        # a bar on stderr while the text is encoded (not a config setting: the tools set it, --quiet clears it)
        self.text_progress = False
        self._finite: Optional[torch.Tensor] = None  # while a call runs: all similarities so far finite

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    # --- text ---------------------------------------------------------------------------------

    def text_features(self) -> torch.Tensor:
        """(R, D) embeddings of every class-name row, computed once (or read from the cache)."""
        device = next(self.surgery.clip.parameters()).device
        if self._text is None or self._text.device != device:
            self._text = cached_text_embeddings(self.surgery, self.classes.rows, self.templates,
                                                self._weights_key, self.text_cache_dir,
                                                progress=self.text_progress).to(device)
        # looked at on every call: the mode may change between calls (tools/demo.py compares modes)
        if self.feature_surgery_mode == "redundant" and (self._redundant is None or self._redundant.device != device):
            self._redundant = cached_text_embeddings(self.surgery, [""], self.templates, self._weights_key,
                                                     self.text_cache_dir, progress=self.text_progress)[0].to(device)
        return self._text

    def text_context(self) -> Optional[TextContext]:
        """The class texts for a method that reads them (``method.needs_text``; None for the others):
        every row's embedding and the logit scale of :meth:`labels_from_logits`'s softmax."""
        if not self.surgery.method.needs_text:
            return None
        return TextContext(self.text_features(), self._scale())

    # --- image --------------------------------------------------------------------------------

    def compute_precision(self, device: Optional[torch.device] = None) -> str:
        """The precision the image encoder runs in on ``device`` (default: the model's): ``precision``
        itself, or for ``auto`` :data:`AUTO_PRECISION` of the device type."""
        if self.precision != "auto":
            return self.precision
        device = torch.device(device) if device is not None else next(self.surgery.clip.parameters()).device
        return AUTO_PRECISION.get(device.type, "fp32")

    def _autocast(self, device: torch.device):
        dtype = PRECISIONS[self.compute_precision(device)]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def window_maps(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, 3, ph, pw) normalised windows -> (B, R, h, w) float32 similarity maps on the patch grid.

        Channels-last (a view of the (B, h, w, R) similarities): the upsampling, the canvas sums and
        the final argmax over classes all run about twice as fast in it.
        """
        text = self.text_features()
        with self._autocast(windows.device):
            tokens = self.surgery.encode_image_tokens(windows, text=self.text_context())
        sim = feature_surgery(tokens.float(), text, self.feature_surgery_mode, self._redundant)[:, 1:]
        if self._finite is not None:
            self._finite &= torch.isfinite(sim).all()
        if self.similarity_normalize == "minmax":
            low, high = sim.amin(dim=1, keepdim=True), sim.amax(dim=1, keepdim=True)
            sim = (sim - low) / (high - low).clamp_min(1e-12)
        b, _, ph, pw = windows.shape
        h, w = ph // self.surgery.patch_size[0], pw // self.surgery.patch_size[1]
        return sim.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    def window_logits(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, 3, ph, pw) normalised windows -> (B, R, ph, pw) float32 similarity maps."""
        return resize_bilinear(self.window_maps(windows), tuple(windows.shape[-2:]))

    def _bytes_per_window(self, windows: torch.Tensor) -> float:
        """A generous estimate of one window's working memory (for ``window_batch_size="auto"``)."""
        _, _, ph, pw = windows.shape
        elem = 4 if self.compute_precision(windows.device) == "fp32" else 2
        rows = len(self.classes.rows)
        visual = self.surgery.clip.visual
        if self.surgery.arch == "vit":
            tokens = (ph // self.surgery.patch_size[0]) * (pw // self.surgery.patch_size[1]) + 1
            block = visual.transformer.resblocks[0]
            width, mlp = visual.conv1.out_channels, block.mlp.c_fc.out_features
            # two residual paths, q/k/v, attention outputs and the MLP, twice over; attention
            # scores in case the attention falls back to the unfused kernel
            encoder = 2 * tokens * (8 * width + mlp) * elem + block.attn.num_heads * tokens * tokens * elem
        else:
            tokens = (ph // 32) * (pw // 32) + 1
            encoder = ph * pw * 1024 * elem  # ResNet activations
        return float(encoder + 3 * tokens * rows * 4)

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        """A normalised (3, H, W) image at the test scale: as it is when the data preprocessor resized
        it (``resize="mmseg"``), else resized here, bilinear on the device."""
        if self.data_preprocessor.resizes:
            return image
        h, w = image.shape[-2:]
        size = keep_ratio_size(h, w, self.short_side, self.max_long_side)
        if size == (h, w):
            return image
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]

    def _canvases(self, inputs: List[torch.Tensor], scratch: Optional[ScratchBuffers]) -> List[torch.Tensor]:
        images = [self._resize(image) for image in inputs]
        self._finite = torch.ones((), dtype=torch.bool, device=images[0].device)
        canvases = slide_logits(images, self.window_maps, self.crop_size, self.stride, self.batcher,
                                self.surgery.patch_size, scratch=scratch, padding=self.protocol.padding)
        finite, self._finite = bool(self._finite), None  # one device sync per call, not one per window batch
        if not finite:
            raise NumericalError("the model gave non-finite similarities (NaN or Inf): the weights hold NaN/Inf "
                                 "values, or reduced precision overflowed; check the weights file, or run "
                                 "with --precision fp32")
        return canvases

    @torch.inference_mode()
    def row_logits(self, inputs: List[torch.Tensor], ori_shapes: Sequence[Sequence[int]]) -> List[torch.Tensor]:
        """Normalised (3, H, W) images -> per image (R, H0, W0) logits of every class-name row at the
        original size (what :meth:`labels_from_logits` takes)."""
        canvases = self._canvases(inputs, None)
        return [self._refine(resize_bilinear(canvas, tuple(shape[:2]))[0], image)
                for canvas, image, shape in zip(canvases, inputs, ori_shapes)]

    @torch.inference_mode()
    def seg_logits(self, inputs: List[torch.Tensor], ori_shapes: Sequence[Sequence[int]]) -> List[torch.Tensor]:
        """Normalised (3, H, W) images -> per image (K, H0, W0) class logits at the original size."""
        return [self.class_logits(logits) for logits in self.row_logits(inputs, ori_shapes)]

    @torch.inference_mode()
    def seg_labels(self, inputs: List[torch.Tensor], ori_shapes: Sequence[Sequence[int]]) -> List[torch.Tensor]:
        """Normalised (3, H, W) images -> per image (H0, W0) int64 labels (what ``predict`` gives).

        ``labels_from_logits(row_logits(...))``, with the large per-image tensors (window maps,
        canvases, logits at the original size) in buffers kept from one call to the next on a CPU.
        """
        canvases = self._canvases(inputs, self._scratch)
        labels = []
        for canvas, image, shape in zip(canvases, inputs, ori_shapes):
            size = tuple(shape[:2])
            out = self._scratch.get("logits", (1, canvas.shape[1], *size), canvas.dtype, canvas.device,
                                    channels_last=True)
            logits = self._refine(resize_bilinear(canvas, size, out)[0], image)
            labels.append(self.labels_from_logits(logits))
        return labels

    def _refine(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The optional post-processing of one image's (R, H0, W0) logits at its original size.

        Where NACLIP's code applies PAMR: on every text row's scores, before the maximum over
        synonyms and the background threshold, guided by the normalised image as the model saw it --
        resized to the test scale -- and resized back (bilinear) to the original size.
        """
        if self.postprocess is None:
            return logits
        guide = F.interpolate(self._resize(image)[None].float(), size=tuple(logits.shape[-2:]), mode="bilinear",
                              align_corners=False)
        return self.postprocess(guide, logits[None].float())[0]

    def class_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(R, ...) logits of the class-name rows -> (K, ...): each class the max over its rows."""
        if not self.classes.has_synonyms:
            return logits
        rows = torch.tensor(self.classes.row_class, device=logits.device)
        return torch.stack([logits[rows == k].amax(dim=0) for k in range(self.num_classes)])

    def labels_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(R, H, W) logits of the class-name rows -> (H, W) int64 labels.

        A pixel gets the class of its best row, i.e. the argmax of :meth:`class_logits` (rows are in
        class order, so ties go to the lower class either way). With ``prob_threshold``, a pixel whose
        top class probability is below it becomes ``background_index``. That probability is the one of
        SCLIP, ClearCLIP, NACLIP and ProxyCLIP, whose thresholds the protocols use: softmax of
        ``logit_scale`` x logits over all R rows (each synonym a row of its own), then a class's
        probability is the max over its rows -- so the top class probability is the top row's.

        With ``area_threshold`` (SCLIP's ``area_thd``), before the threshold: every class other than
        the background predicted on at most that share of the pixels predicted as any such class
        has its probabilities zeroed, and the pixels are assigned again (:meth:`_suppress_small_classes`).
        """
        rows = torch.tensor(self.classes.row_class, device=logits.device)
        if self.area_threshold is None:
            pred = rows[logits.argmax(dim=0)]
            if self.prob_threshold is None:
                return pred
            top = (logits * self._scale()).softmax(dim=0).amax(dim=0)
        else:
            probs = self.class_logits((logits * self._scale()).softmax(dim=0))  # (K, H, W)
            probs = self._suppress_small_classes(probs)
            pred, top = probs.argmax(dim=0), probs.amax(dim=0)
        if self.prob_threshold is not None:
            pred[top < self.prob_threshold] = self.background_index
        return pred

    def _scale(self) -> float:
        """The softmax's logit scale: the protocol's, else the CLIP's own."""
        return float(self.logit_scale if self.logit_scale is not None else self.surgery.clip.logit_scale.detach().exp())

    def _suppress_small_classes(self, probs: torch.Tensor) -> torch.Tensor:
        """SCLIP's area threshold on (K, H, W) class probabilities: classes (not the background)
        whose pixels under the argmax are not more than ``area_threshold`` of all non-background
        pixels get zero probability."""
        counts = torch.bincount(probs.argmax(dim=0).flatten(), minlength=probs.shape[0]).to(probs.dtype)
        foreground = torch.ones_like(counts, dtype=torch.bool)
        if self.background_index is not None:
            foreground[self.background_index] = False
        keep = (counts > self.area_threshold * counts[foreground].sum()) | ~foreground
        return probs * keep.to(probs.dtype)[:, None, None]

    # --- mmseg API ----------------------------------------------------------------------------

    def predict(self, inputs: List[torch.Tensor], data_samples: Optional[list] = None) -> list:
        """Sets ``pred_sem_seg`` (1, H0, W0) on every data sample and returns them."""
        from mmseg.structures import SegDataSample

        if data_samples is None:
            data_samples = [SegDataSample(metainfo=dict(ori_shape=tuple(im.shape[-2:]))) for im in inputs]
        labels = self.seg_labels(inputs, [s.metainfo["ori_shape"] for s in data_samples])
        for sample, image_labels in zip(data_samples, labels):
            sample.pred_sem_seg = PixelData(data=image_labels[None])
        return data_samples

    def encode_decode(self, inputs: List[torch.Tensor], batch_data_samples: list) -> List[torch.Tensor]:
        """Per image (K, H0, W0) class logits (mmseg's meaning of seg logits)."""
        return self.seg_logits(inputs, [s.metainfo["ori_shape"] for s in batch_data_samples])

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.surgery.encode_image_tokens(inputs, text=self.text_context())

    def _forward(self, inputs: List[torch.Tensor], data_samples: Optional[list] = None):
        shapes = [s.metainfo["ori_shape"] for s in data_samples] if data_samples else [im.shape[-2:] for im in inputs]
        return self.seg_logits(inputs, shapes)

    def loss(self, inputs, data_samples) -> dict:
        raise NotImplementedError("CLIPSurgerySegmentor is training-free: inference only")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
