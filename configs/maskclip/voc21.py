# MaskCLIP (Zhou et al., ECCV 2022) on PASCAL VOC21: configs/voc21.py with the method replaced (docs/methods.md).
# The templates follow the method (clip_surgery_85) unless a protocol fixes a set.
_base_ = ['../voc21.py']
model = dict(method=dict(_delete_=True, type='maskclip', pos_interp='bicubic'))
