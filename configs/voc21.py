# PASCAL VOC 2012 with background (VOC21), val (1449 images). Palette PNGs read as their indices:
# 0 = background (a class), 1..20 = the 20 classes, 255 = boundary/difficult -> ignore.
# The experiment: CLIP Surgery on OpenAI's ViT-B/16 (the model base), the dataset below, and a protocol.
_base_ = ['./_base_/models/clip_surgery_vit_b16.py', './_base_/datasets/pipeline.py']
dataset_name = 'voc21'
data_subdir = 'VOCdevkit/VOC2012'
test_dataloader = dict(
    dataset=dict(
        type='PascalVOCDataset',
        data_root='data/' + data_subdir,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False))
protocol = dict(name='sclip')  # configs/_base_/protocols/sclip.py, its values for this dataset
# Class 0, the class-name file's first line, is background: scored like any class, and the class
# that pixels below the protocol's prob_threshold become (docs/datasets.md, "Background").
model = dict(background_index=0)
