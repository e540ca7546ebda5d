# vanilla CLIP (every block unchanged) on PASCAL VOC20: configs/voc20.py with the method replaced (docs/methods.md).
# The templates follow the method (imagenet_80) unless a protocol fixes a set.
_base_ = ['../voc20.py']
model = dict(method=dict(_delete_=True, type='vanilla', pos_interp='bicubic_offset'))
