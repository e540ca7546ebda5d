# MaskCLIP (Zhou et al., ECCV 2022) on COCO-Object: configs/coco_object.py with the method replaced (docs/methods.md).
# The templates follow the method (clip_surgery_85) unless a protocol fixes a set.
_base_ = ['../coco_object.py']
model = dict(method=dict(_delete_=True, type='maskclip', pos_interp='bicubic'))
