# CLIP Surgery on ADE20K-150: configs/ade20k.py itself (its model base is CLIP Surgery's).
_base_ = ['../ade20k.py']
