# CLIP Surgery, ViT-B/16 (OpenAI weights), on ade20k, under the default protocol (sclip).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/ade20k.py',
          './_base_/protocols/sclip/ade20k.py']
model = dict(classnames='{{fileDirname}}/classnames/ade20k.txt')
