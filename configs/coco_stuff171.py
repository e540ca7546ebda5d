# CLIP Surgery, ViT-B/16 (OpenAI weights), on coco_stuff171, under the default protocol (sclip).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/coco_stuff171.py',
          './_base_/protocols/sclip/coco_stuff171.py']
model = dict(classnames='{{fileDirname}}/classnames/coco_stuff171.txt')
