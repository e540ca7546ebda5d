# Images and labels are loaded strictly (clip_surgery_seg/datasets/transforms.py); the segmentor
# resizes to the protocol's test scale itself, so labels stay at the original size.
test_pipeline = [
    dict(type='LoadImageStrict'),
    dict(type='LoadLabelStrict'),
    dict(type='PackSegInputs', meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                                          'reduce_zero_label')),
]

# What every dataset config shares; each adds its dataset's type, folders and label rule.
test_dataloader = dict(
    batch_size=4,      # images per forward pass (their windows are batched together)
    num_workers=4,     # decoding in worker processes, overlapping the model
    dataset=dict(test_mode=True, pipeline=test_pipeline))
