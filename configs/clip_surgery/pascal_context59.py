# CLIP Surgery on PASCAL Context-59: configs/pascal_context59.py itself (its model base is CLIP Surgery's).
_base_ = ['../pascal_context59.py']
