# ClearCLIP's evaluation settings (Lan et al., ECCV 2024; its code's configs/cfg_<dataset>.py):
# short side 448, window 448/224. `defaults` hold for every dataset, `datasets` lists what differs.
# The source of every value is in docs/protocol.md.
defaults = dict(short_side=448, max_long_side=2048, crop_size=448, stride=224,
                prob_threshold=None, logit_scale=None)  # no background class: no threshold
datasets = dict(
    # background below these probabilities, softmax at ClearCLIP's default logit scale 50
    voc21=dict(prob_threshold=0.5, logit_scale=50.0),
    pascal_context60=dict(prob_threshold=0.15, logit_scale=50.0),
    coco_object=dict(prob_threshold=0.4, logit_scale=50.0),
)
