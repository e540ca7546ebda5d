# CLIP Surgery on OpenAI's ViT-B/16, training-free (docs/method.md §1-5).
model = dict(
    type='CLIPSurgerySegmentor',
    clip=dict(name='ViT-B-16', pretrained='openai'),  # open_clip name or model-config JSON; tag, file or None
    method=dict(                    # the image-token method (docs/methods.md)
        type='clip_surgery',
        depth=6,                    # blocks on the two-path (surgery) forward
        new_path_attention='vv',    # 'vv' | 'identity' (MaskCLIP-style)
        resnet_norm=False,          # ResNet CLIPs: the paper's normalised-v variant
        pos_interp='bilinear'),     # positional-embedding resize for other grids, as its code does
    feature_surgery='none',         # 'none' | 'redundant' | 'weighted'
    templates=None,                 # None: the protocol's set if it fixes one, else the method's own
                                    # (CLIP Surgery's: 'clip_surgery_85'); or 'clip_surgery_85' |
                                    # 'imagenet_80' | a list of '{}' templates
    postprocess=None,               # None | dict(type='pamr', num_iter=10, dilations=(8, 16))
    classnames=None,                # class-name file; None: configs/classnames/<dataset_name>.txt
    window_batch_size='auto',       # windows per forward: 8 on CPU, from free memory on GPU (halved on OOM)
    similarity_normalize='none',    # 'none' | 'minmax'
    background_index=None,          # the background class, if any (set by voc21, pascal_context60, coco_object);
                                    # the protocol's prob_threshold and logit_scale decide which pixels become it
    precision='auto',               # 'fp32' | 'fp16' | 'bf16' (autocast) | 'auto': fp16 on GPU, fp32 on CPU
    text_cache_dir=None,            # None: ~/.cache/clip_surgery_seg/text_embeddings
)
test_evaluator = dict(type='SegConfusionMetric', ignore_index=255)
