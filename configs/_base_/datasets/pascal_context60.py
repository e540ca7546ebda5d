# PASCAL Context-60, val (5105 images): the Context-59 files, with PNG 0 = background as class 0
# and 1..59 as the 59 classes (no ignored pixel).
_base_ = ['./pascal_context59.py']
dataset_name = 'pascal_context60'
test_dataloader = dict(dataset=dict(type='PascalContextDataset', reduce_zero_label=False))
