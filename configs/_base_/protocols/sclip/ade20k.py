# SCLIP's protocol, the harness's default: short side 336, window 224/112.
protocol = dict(name='sclip', short_side=336, max_long_side=2048, crop_size=224, stride=112,
                prob_threshold=None, logit_scale=None)  # no background class: no threshold
