# CLIP Surgery on PASCAL VOC20: configs/voc20.py itself (its model base is CLIP Surgery's).
_base_ = ['../voc20.py']
