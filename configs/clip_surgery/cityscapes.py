# CLIP Surgery on Cityscapes: configs/cityscapes.py itself (its model base is CLIP Surgery's).
_base_ = ['../cityscapes.py']
