# SCLIP (Wang et al., ECCV 2024) on PASCAL Context-59: configs/pascal_context59.py with the method replaced (docs/methods.md).
# The templates follow the method (imagenet_80) unless a protocol fixes a set.
_base_ = ['../pascal_context59.py']
model = dict(method=dict(_delete_=True, type='sclip', pos_interp='bicubic_offset'))
