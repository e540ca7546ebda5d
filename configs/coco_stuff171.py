# CLIP Surgery, ViT-B/16 (OpenAI), coco_stuff171, default protocol (SCLIP's: short side 448, window 224/112).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/coco_stuff171.py']
protocol = 'sclip'
model = dict(
    classnames='{{fileDirname}}/classnames/coco_stuff171.txt',
    short_side=448,
    crop_size=224,
    stride=112)
