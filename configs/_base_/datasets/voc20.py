# PASCAL VOC 2012 without background (VOC20), val (1449 images): the VOC21 files, with
# PNG 0 = background -> ignore; 1..20 -> 0..19; 255 stays ignored.
_base_ = ['./pipeline.py']
dataset_name = 'voc20'
data_subdir = 'VOCdevkit/VOC2012'
test_dataloader = dict(
    batch_size=4,      # images per forward pass (their windows are batched together)
    num_workers=4,     # decoding in worker processes, overlapping the model
    dataset=dict(
        type='PascalVOC20Dataset',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=True,
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
