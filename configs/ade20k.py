# ADE20K-150, validation split (2000 images). PNG 0 = other -> ignore; 1..150 -> 0..149.
# The experiment: CLIP Surgery on OpenAI's ViT-B/16 (the model base), the dataset below, and a protocol.
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pipeline.py']
dataset_name = 'ade20k'
data_subdir = 'ADEChallengeData2016'   # under --data-root (default data/)
test_dataloader = dict(
    dataset=dict(
        type='ADE20KDataset',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True))
protocol = dict(name='sclip')  # configs/_base_/protocols/sclip.py, its values for this dataset
