# PASCAL VOC 2012 without background (VOC20), val (1449 images): the VOC21 files, with
# PNG 0 = background -> ignore; 1..20 -> 0..19; 255 stays ignored.
# CLIP Surgery on OpenAI's ViT-B/16 under the sclip protocol, as configs/voc21.py.
_base_ = ['./voc21.py']
dataset_name = 'voc20'
test_dataloader = dict(dataset=dict(type='PascalVOC20Dataset', reduce_zero_label=True))
model = dict(background_index=None)  # background is ignored, not a class
