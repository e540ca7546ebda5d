# vanilla CLIP (every block unchanged) on PASCAL Context-60: configs/pascal_context60.py with the method replaced (docs/methods.md).
# The templates follow the method (imagenet_80) unless a protocol fixes a set.
_base_ = ['../pascal_context60.py']
model = dict(method=dict(_delete_=True, type='vanilla', pos_interp='bicubic_offset'))
