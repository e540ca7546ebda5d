# ClearCLIP's protocol: short side 448, window 448/224.
protocol = dict(name='clearclip', short_side=448, max_long_side=2048, crop_size=448, stride=224,
                prob_threshold=None, logit_scale=None)  # no background class: no threshold
