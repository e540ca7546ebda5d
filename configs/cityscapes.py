# Cityscapes, val (500 images in city folders). *_gtFine_labelTrainIds.png 0..18, 255 ignore.
# The experiment: CLIP Surgery on OpenAI's ViT-B/16 (the model base), the dataset below, and a protocol.
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pipeline.py']
dataset_name = 'cityscapes'
data_subdir = 'cityscapes'
test_dataloader = dict(
    dataset=dict(
        type='CityscapesDataset',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        img_suffix='_leftImg8bit.png',
        seg_map_suffix='_gtFine_labelTrainIds.png',
        reduce_zero_label=False))
protocol = dict(name='sclip')  # configs/_base_/protocols/sclip.py, its values for this dataset
