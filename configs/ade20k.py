# CLIP Surgery, ViT-B/16 (OpenAI), ade20k, default protocol (SCLIP's: short side 336, window 224/112).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/ade20k.py']
protocol = 'sclip'
model = dict(
    classnames='{{fileDirname}}/classnames/ade20k.txt',
    short_side=336,
    crop_size=224,
    stride=112)
