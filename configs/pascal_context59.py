# CLIP Surgery, ViT-B/16 (OpenAI), pascal_context59, default protocol (SCLIP's: short side 336, window 224/112).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pascal_context59.py']
protocol = 'sclip'
model = dict(
    classnames='{{fileDirname}}/classnames/pascal_context59.txt',
    short_side=336,
    crop_size=224,
    stride=112)
