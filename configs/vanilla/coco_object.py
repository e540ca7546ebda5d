# vanilla CLIP (every block unchanged) on COCO-Object: configs/coco_object.py with the method replaced (docs/methods.md).
# The templates follow the method (imagenet_80) unless a protocol fixes a set.
_base_ = ['../coco_object.py']
model = dict(method=dict(_delete_=True, type='vanilla', pos_interp='bicubic_offset'))
