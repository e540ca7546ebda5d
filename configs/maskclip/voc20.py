# MaskCLIP (Zhou et al., ECCV 2022) on PASCAL VOC20: configs/voc20.py with the method replaced (docs/methods.md).
# The templates follow the method (clip_surgery_85) unless a protocol fixes a set.
_base_ = ['../voc20.py']
model = dict(method=dict(_delete_=True, type='maskclip', pos_interp='bicubic'))
