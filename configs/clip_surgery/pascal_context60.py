# CLIP Surgery on PASCAL Context-60: configs/pascal_context60.py itself (its model base is CLIP Surgery's).
_base_ = ['../pascal_context60.py']
