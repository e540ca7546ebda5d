# PASCAL Context-60, val (5105 images): the Context-59 files, with PNG 0 = background as class 0
# and 1..59 as the 59 classes (no ignored pixel).
_base_ = ['./pipeline.py']
dataset_name = 'pascal_context60'
data_subdir = 'VOCdevkit/VOC2010'
test_dataloader = dict(
    batch_size=4,      # images per forward pass (their windows are batched together)
    num_workers=4,     # decoding in worker processes, overlapping the model
    dataset=dict(
        type='PascalContextDataset',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
