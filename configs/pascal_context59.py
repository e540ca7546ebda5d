# CLIP Surgery, ViT-B/16 (OpenAI weights), on pascal_context59, under the default protocol (sclip).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pascal_context59.py',
          './_base_/protocols/sclip/pascal_context59.py']
model = dict(classnames='{{fileDirname}}/classnames/pascal_context59.txt')
