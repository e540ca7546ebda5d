# SCLIP's evaluation settings (Wang et al., ECCV 2024; its code's configs/cfg_<dataset>.py): the
# protocol of the shipped configs. `defaults` hold for every dataset, `datasets` lists what differs.
# The source of every value is in docs/protocol.md.
defaults = dict(short_side=336, max_long_side=2048, crop_size=224, stride=112,
                prob_threshold=None, logit_scale=None)  # no background class: no threshold
datasets = dict(
    # a pixel whose top class probability (softmax of logit_scale x logits over all rows) is below
    # prob_threshold becomes background
    voc21=dict(prob_threshold=0.1, logit_scale=65.0),
    pascal_context60=dict(prob_threshold=0.1, logit_scale=50.0),
    coco_object=dict(prob_threshold=0.1, logit_scale=50.0),
    coco_stuff171=dict(short_side=448),
    cityscapes=dict(short_side=560),
)
