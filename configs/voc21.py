# CLIP Surgery, ViT-B/16 (OpenAI weights), on voc21, under the default protocol (sclip).
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/voc21.py',
          './_base_/protocols/sclip/voc21.py']
# Class 0, the class-name file's first line, is background: scored like any class, and the class
# that pixels below the protocol's prob_threshold become (docs/datasets.md, "Background").
model = dict(classnames='{{fileDirname}}/classnames/voc21.txt', background_index=0)
