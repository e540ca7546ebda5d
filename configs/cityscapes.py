# CLIP Surgery, ViT-B/16 (OpenAI), cityscapes, default protocol (SCLIP's: short side 560, window 224/112).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/cityscapes.py']
protocol = 'sclip'
model = dict(
    classnames='{{fileDirname}}/classnames/cityscapes.txt',
    short_side=560,
    crop_size=224,
    stride=112)
