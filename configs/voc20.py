# CLIP Surgery, ViT-B/16 (OpenAI weights), on voc20, under the default protocol (sclip).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/voc20.py',
          './_base_/protocols/sclip/voc20.py']
model = dict(classnames='{{fileDirname}}/classnames/voc20.txt')
