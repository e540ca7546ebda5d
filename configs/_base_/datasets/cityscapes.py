# Cityscapes, val (500 images in city folders). *_gtFine_labelTrainIds.png 0..18, 255 ignore.
_base_ = ['./pipeline.py']
dataset_name = 'cityscapes'
data_subdir = 'cityscapes'
expected_images = 500
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        type='CityscapesDataset',
        data_root='data/cityscapes',
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        img_suffix='_leftImg8bit.png',
        seg_map_suffix='_gtFine_labelTrainIds.png',
        reduce_zero_label=False,
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
