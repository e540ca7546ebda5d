# The ClearCLIP-style protocol: short side 448, window 448/224.
_base_ = ['../coco_stuff171.py']
protocol = 'clearclip'
model = dict(short_side=448, crop_size=448, stride=224)
