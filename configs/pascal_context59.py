# PASCAL Context-59, val (5105 images). PNG 0 = background -> ignore; 1..59 -> 0..58.
# The experiment: CLIP Surgery on OpenAI's ViT-B/16 (the model base), the dataset below, and a protocol.
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pipeline.py']
dataset_name = 'pascal_context59'
data_subdir = 'VOCdevkit/VOC2010'
test_dataloader = dict(
    dataset=dict(
        type='PascalContextDataset59',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True))
protocol = dict(name='sclip')  # configs/_base_/protocols/sclip.py, its values for this dataset
