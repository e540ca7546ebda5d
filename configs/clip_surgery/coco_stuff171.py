# CLIP Surgery on COCO-Stuff-171: configs/coco_stuff171.py itself (its model base is CLIP Surgery's).
_base_ = ['../coco_stuff171.py']
