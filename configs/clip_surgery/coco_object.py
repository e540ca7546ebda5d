# CLIP Surgery on COCO-Object: configs/coco_object.py itself (its model base is CLIP Surgery's).
_base_ = ['../coco_object.py']
