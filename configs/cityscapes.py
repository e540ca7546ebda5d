# CLIP Surgery, ViT-B/16 (OpenAI weights), on cityscapes, under the default protocol (sclip).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/cityscapes.py',
          './_base_/protocols/sclip/cityscapes.py']
model = dict(classnames='{{fileDirname}}/classnames/cityscapes.txt')
