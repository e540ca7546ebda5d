# COCO-Stuff-171, val2017 (5000 images). *_labelTrainIds.png 0..170, 255 ignore.
# The experiment: CLIP Surgery on OpenAI's ViT-B/16 (the model base), the dataset below, and a protocol.
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pipeline.py']
dataset_name = 'coco_stuff171'
data_subdir = 'coco_stuff164k'
test_dataloader = dict(
    dataset=dict(
        type='COCOStuffDataset',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'),
        img_suffix='.jpg',
        seg_map_suffix='_labelTrainIds.png',
        reduce_zero_label=False))
protocol = dict(name='sclip')  # configs/_base_/protocols/sclip.py, its values for this dataset
