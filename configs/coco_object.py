# COCO-Object, val2017 (5000 images). *_instanceTrainIds.png, made from the COCO-Stuff maps:
# 0 = background (every stuff class and unlabeled pixels), 1..80 = the 80 thing classes; no ignore.
# The experiment: CLIP Surgery on OpenAI's ViT-B/16 (the model base), the dataset below, and a protocol.
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pipeline.py']
dataset_name = 'coco_object'
data_subdir = 'coco_stuff164k'
test_dataloader = dict(
    dataset=dict(
        type='COCOObjectDataset',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'),
        img_suffix='.jpg',
        seg_map_suffix='_instanceTrainIds.png',
        reduce_zero_label=False))
protocol = dict(name='sclip')  # configs/_base_/protocols/sclip.py, its values for this dataset
# Class 0, the class-name file's first line, is background: scored like any class, and the class
# that pixels below the protocol's prob_threshold become (docs/datasets.md, "Background").
model = dict(background_index=0)
