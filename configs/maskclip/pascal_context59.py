# MaskCLIP (Zhou et al., ECCV 2022) on PASCAL Context-59: configs/pascal_context59.py with the method replaced (docs/methods.md).
# The templates follow the method (clip_surgery_85) unless a protocol fixes a set.
_base_ = ['../pascal_context59.py']
model = dict(method=dict(_delete_=True, type='maskclip', pos_interp='bicubic'))
