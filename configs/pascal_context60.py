# PASCAL Context-60, val (5105 images): the Context-59 files, with PNG 0 = background as class 0
# and 1..59 as the 59 classes (no ignored pixel).
# CLIP Surgery on OpenAI's ViT-B/16 under the sclip protocol, as configs/pascal_context59.py.
_base_ = ['./pascal_context59.py']
dataset_name = 'pascal_context60'
test_dataloader = dict(dataset=dict(type='PascalContextDataset', reduce_zero_label=False))
# Class 0, the class-name file's first line, is background: scored like any class, and the class
# that pixels below the protocol's prob_threshold become (docs/datasets.md, "Background").
model = dict(background_index=0)
