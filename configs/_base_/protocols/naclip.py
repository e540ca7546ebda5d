# NACLIP's evaluation harness as released now (Hajimiri et al., WACV 2025; github.com/sinahmr/NACLIP,
# the "v2" configs that made its README's numbers): configs/cfg_<dataset>.py and the defaults of
# NACLIP.__init__ in naclip.py. Its segmentor also applies PAMR (10 steps, dilations 8 and 16): a
# post-processing step of its own here (method.postprocess; `tools/reproduce.py --protocol native`
# runs NACLIP with it). `defaults` hold for every dataset, `datasets` lists what differs.
defaults = dict(
    short_side=336, max_long_side=2048,  # Resize(scale=(2048, 336), keep_ratio=True)
    resize='mmseg',
    crop_size=224, stride=112,           # slide_crop=224, slide_stride=112
    padding='stretch',                   # no padding: the patch embedding drops a remainder
    prob_threshold=None,                 # prob_thd=0.0
    area_threshold=None,                 # removed in v2
    logit_scale=40.0,                    # logit_scale=40, no config changes it
    classnames='sclip',                  # its cls_*.txt are not in any stored copy; same file names as SCLIP's
)
datasets = dict(
    voc21=dict(crop_size=None, prob_threshold=0.1),  # cfg_voc21.py: slide_crop=0, the whole image
    voc20=dict(crop_size=None),                      # cfg_voc20.py: slide_crop=0
    pascal_context60=dict(prob_threshold=0.1),       # cfg_context60.py
    coco_object=dict(prob_threshold=0.1),            # cfg_coco_object.py
    cityscapes=dict(short_side=560),                 # cfg_city_scapes.py (COCO-Stuff: 336 in v2)
)
