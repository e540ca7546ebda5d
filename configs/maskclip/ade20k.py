# MaskCLIP (Zhou et al., ECCV 2022) on ADE20K-150: configs/ade20k.py with the method replaced (docs/methods.md).
# The templates follow the method (clip_surgery_85) unless a protocol fixes a set.
_base_ = ['../ade20k.py']
model = dict(method=dict(_delete_=True, type='maskclip', pos_interp='bicubic'))
