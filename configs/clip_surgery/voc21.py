# CLIP Surgery on PASCAL VOC21: configs/voc21.py itself (its model base is CLIP Surgery's).
_base_ = ['../voc21.py']
