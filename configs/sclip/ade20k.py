# SCLIP (Wang et al., ECCV 2024) on ADE20K-150: configs/ade20k.py with the method replaced (docs/methods.md).
# The templates follow the method (imagenet_80) unless a protocol fixes a set.
_base_ = ['../ade20k.py']
model = dict(method=dict(_delete_=True, type='sclip', pos_interp='bicubic_offset'))
