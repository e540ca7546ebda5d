# NACLIP (Hajimiri et al., WACV 2025) on PASCAL Context-60: configs/pascal_context60.py with the method replaced (docs/methods.md).
# The templates follow the method (imagenet_80) unless a protocol fixes a set.
# NACLIP's code also refines with PAMR by default; here post-processing is a step of its own, off
# unless asked for: --cfg-options model.postprocess=pamr (the setting of the numbers in NACLIP's README).
_base_ = ['../pascal_context60.py']
model = dict(method=dict(_delete_=True, type='naclip', gaussian_std=5.0, pos_interp='bicubic_offset'))
