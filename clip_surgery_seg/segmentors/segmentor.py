"""CLIPSurgerySegmentor: training-free segmentation with a frozen CLIP (docs/method.md §5)."""
from __future__ import annotations

import contextlib
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS

from ..datasets.classnames import ClassNames, load_classnames
from ..models import FEATURE_SURGERY_MODES, SurgeryCLIP, build_clip, feature_surgery, weights_identity
from .data_preprocessor import CLIP_MEAN, CLIP_STD
from .sliding import ScratchBuffers, WindowBatcher, keep_ratio_size, resize_bilinear, slide_logits
from .text_embeddings import cached_text_embeddings
from ..errors import ConfigError

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
    every class -> bilinear upsample -> logit canvas -> original size -> max over synonyms -> argmax.

    Args:
        clip: ``dict(name=..., pretrained=..., quick_gelu=None)`` for :func:`build_clip`.
        classnames: class-name file (one class per line, comma-separated synonyms).
        method: the image-token method, ``dict(type=name, **params)`` (docs/method.md §1-2, docs/methods.md): ``clip_surgery``
            (default, ``depth``, ``new_path_attention``, ``resnet_norm``), ``vanilla``, ``maskclip``,
            ``sclip``, ``clearclip``, ``naclip``; see :mod:`clip_surgery_seg.models.methods`.
        feature_surgery: ``none`` | ``redundant`` | ``weighted`` (docs/method.md §4).
        templates: named template set or list of templates (docs/method.md §3).
        short_side, max_long_side: keep-ratio test scale.
        crop_size, stride: sliding window.
        window_batch_size: windows per forward pass (halved on GPU out-of-memory), or ``"auto"``:
            from the free memory on a GPU, a fixed size on a CPU (``sliding.auto_batch_size``).
        similarity_normalize: ``none`` | ``minmax`` (per class over each window's tokens).
        logit_scale, prob_threshold, background_index: optional background by low confidence.
        precision: ``fp32`` | ``fp16`` | ``bf16`` (autocast of the image encoder) | ``auto``
            (:data:`AUTO_PRECISION`: fp16 on a GPU, fp32 on a CPU; see ``compute_precision``).
        text_cache_dir: where text embeddings are cached (None: the user cache).
    """

    def __init__(self, clip: dict, classnames: Union[str, Sequence[str]],
                 method: Union[str, dict] = "clip_surgery", feature_surgery: str = "none",
                 templates: Union[str, Sequence[str]] = "clip_surgery_85", short_side: int = 336,
                 max_long_side: int = 2048, crop_size: int = 224, stride: int = 112,
                 window_batch_size: Union[int, str] = 32, similarity_normalize: str = "none",
                 logit_scale: Optional[float] = None, prob_threshold: Optional[float] = None,
                 background_index: Optional[int] = None, precision: str = "fp32",
                 text_cache_dir: Optional[str] = None, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type="CLIPSegDataPreProcessor", mean=mean, std=std)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        _check_choice("feature_surgery", feature_surgery, FEATURE_SURGERY_MODES)
        _check_choice("similarity_normalize", similarity_normalize, SIMILARITY_NORMALIZE)
        _check_choice("precision", precision, (*PRECISIONS, "auto"))
        if stride < 1 or crop_size < 1 or stride > crop_size:
            raise ConfigError(f"need 1 <= stride <= crop_size, got crop_size={crop_size}, stride={stride}")
        if prob_threshold is not None and background_index is None:
            raise ConfigError("prob_threshold needs background_index (the class that low-confidence "
                             "pixels become)")

        self.classes: ClassNames = (load_classnames(classnames) if isinstance(classnames, str)
                                    else ClassNames.from_lines(list(classnames)))
        clip_cfg = dict(clip)
        clip_model, tokenizer = build_clip(**clip_cfg)
        self.surgery = SurgeryCLIP(clip_model, tokenizer, method=method)
        identity = weights_identity(clip_cfg["name"], clip_cfg.get("pretrained"), clip_cfg.get("seed", 0))
        self.weights = identity
        self._weights_key = f"{identity.key()}:quick_gelu={clip_cfg.get('quick_gelu')}"
        self.feature_surgery_mode = feature_surgery
        self.templates = templates
        self.short_side, self.max_long_side = short_side, max_long_side
        self.crop_size, self.stride = crop_size, stride
        self.batcher = WindowBatcher(window_batch_size, self._bytes_per_window)
        self._scratch = ScratchBuffers()  # large per-image CPU buffers, reused by predict()
        self.similarity_normalize = similarity_normalize
        self.logit_scale = logit_scale
        self.prob_threshold = prob_threshold
        self.background_index = background_index
        self.precision = precision
        self.text_cache_dir = text_cache_dir
        self._text: Optional[torch.Tensor] = None
        self._redundant: Optional[torch.Tensor] = None

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    # --- text ---------------------------------------------------------------------------------

    def text_features(self) -> torch.Tensor:
        """(R, D) embeddings of every class-name row, computed once (or read from the cache)."""
        device = next(self.surgery.clip.parameters()).device
        if self._text is None or self._text.device != device:
            self._text = cached_text_embeddings(self.surgery, self.classes.rows, self.templates,
                                                self._weights_key, self.text_cache_dir).to(device)
        # looked at on every call: the mode may change between calls (tools/demo.py compares modes)
        if self.feature_surgery_mode == "redundant" and (self._redundant is None or self._redundant.device != device):
            self._redundant = cached_text_embeddings(self.surgery, [""], self.templates,
                                                     self._weights_key, self.text_cache_dir)[0].to(device)
        return self._text

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
            tokens = self.surgery.encode_image_tokens(windows)
        sim = feature_surgery(tokens.float(), text, self.feature_surgery_mode, self._redundant)[:, 1:]
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
        h, w = image.shape[-2:]
        size = keep_ratio_size(h, w, self.short_side, self.max_long_side)
        if size == (h, w):
            return image
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]

    def _canvases(self, inputs: List[torch.Tensor], scratch: Optional[ScratchBuffers]) -> List[torch.Tensor]:
        images = [self._resize(image) for image in inputs]
        return slide_logits(images, self.window_maps, self.crop_size, self.stride, self.batcher,
                            self.surgery.patch_size, scratch=scratch)

    @torch.inference_mode()
    def seg_logits(self, inputs: List[torch.Tensor], ori_shapes: Sequence[Sequence[int]]) -> List[torch.Tensor]:
        """Normalised (3, H, W) images -> per image (K, H0, W0) class logits at the original size."""
        canvases = self._canvases(inputs, None)
        return [self._max_over_synonyms(resize_bilinear(canvas, tuple(shape[:2]))[0])
                for canvas, shape in zip(canvases, ori_shapes)]

    @torch.inference_mode()
    def seg_labels(self, inputs: List[torch.Tensor], ori_shapes: Sequence[Sequence[int]]) -> List[torch.Tensor]:
        """Normalised (3, H, W) images -> per image (H0, W0) int64 labels (what ``predict`` gives).

        ``labels_from_logits(seg_logits(...))``, with the large per-image tensors (window maps,
        canvases, logits at the original size) in buffers kept from one call to the next on a CPU.
        """
        canvases = self._canvases(inputs, self._scratch)
        labels = []
        for canvas, shape in zip(canvases, ori_shapes):
            size = tuple(shape[:2])
            out = self._scratch.get("logits", (1, canvas.shape[1], *size), canvas.dtype, canvas.device,
                                    channels_last=True)
            logits = resize_bilinear(canvas, size, out)[0]
            labels.append(self.labels_from_logits(self._max_over_synonyms(logits)))
        return labels

    def _max_over_synonyms(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.classes.has_synonyms:
            return logits
        rows = torch.tensor(self.classes.row_class, device=logits.device)
        return torch.stack([logits[rows == k].amax(dim=0) for k in range(self.num_classes)])

    def labels_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(K, H, W) logits -> (H, W) int64 labels, with the optional low-confidence background."""
        pred = logits.argmax(dim=0)
        if self.prob_threshold is not None:
            scale = self.logit_scale if self.logit_scale is not None else float(self.surgery.clip.logit_scale.exp())
            prob = (logits * scale).softmax(dim=0).amax(dim=0)
            pred[prob < self.prob_threshold] = self.background_index
        return pred

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
        return self.seg_logits(inputs, [s.metainfo["ori_shape"] for s in batch_data_samples])

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.surgery.encode_image_tokens(inputs)

    def _forward(self, inputs: List[torch.Tensor], data_samples: Optional[list] = None):
        shapes = [s.metainfo["ori_shape"] for s in data_samples] if data_samples else [im.shape[-2:] for im in inputs]
        return self.seg_logits(inputs, shapes)

    def loss(self, inputs, data_samples) -> dict:
        raise NotImplementedError("CLIPSurgerySegmentor is training-free: inference only")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
