# SCLIP's protocol, the harness's default: short side 336, window 224/112, and SCLIP's background
# threshold for this dataset: softmax over all text rows at scale 50, pixels whose top class
# probability is below 0.1 become background.
protocol = dict(name='sclip', short_side=336, max_long_side=2048, crop_size=224, stride=112,
                prob_threshold=0.1, logit_scale=50.0)
