# SCLIP's protocol, the harness's default: short side 336, window 224/112, and SCLIP's background
# threshold for this dataset: softmax over all text rows at scale 65, pixels whose top class
# probability is below 0.1 become background. (SCLIP also zeroes, per image, every class that covers
# at most 10 % of the pixels predicted as objects, area_thd=0.1; the harness does not.)
protocol = dict(name='sclip', short_side=336, max_long_side=2048, crop_size=224, stride=112,
                prob_threshold=0.1, logit_scale=65.0)
