# ClearCLIP's protocol: short side 448, window 448/224, and ClearCLIP's background threshold for
# this dataset: softmax over all text rows at scale 50 (its default), below 0.15 -> background.
protocol = dict(name='clearclip', short_side=448, max_long_side=2048, crop_size=448, stride=224,
                prob_threshold=0.15, logit_scale=50.0)
