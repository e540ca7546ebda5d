# SCLIP's evaluation harness (Wang et al., ECCV 2024; github.com/wangf3014/SCLIP): its
# configs/cfg_<dataset>.py, the defaults of CLIPForSegmentation.__init__ in clip_segmentor.py, and
# its configs/cls_<dataset>.txt. The protocol of the shipped configs. `defaults` hold for every
# dataset, `datasets` lists what differs; docs/protocol.md gives the file of every value.
defaults = dict(
    short_side=336, max_long_side=2048,  # Resize(scale=(2048, 336), keep_ratio=True)
    resize='mmseg',                      # that transform, on the decoded uint8 image
    crop_size=224, stride=112,           # slide_crop=224, slide_stride=112 (the segmentor's defaults)
    padding='stretch',                   # no padding: the patch embedding drops a remainder
    prob_threshold=None,                 # prob_thd=0.0: no pixel is below it
    area_threshold=None,                 # area_thd=None
    logit_scale=40.0,                    # logit_scale=40
    classnames='sclip',                  # configs/classnames/sclip/<dataset>.txt: its cls_*.txt
)
datasets = dict(
    voc21=dict(prob_threshold=0.1, area_threshold=0.1, logit_scale=65.0),  # cfg_voc21.py
    pascal_context60=dict(prob_threshold=0.1, logit_scale=50.0),            # cfg_context60.py
    coco_object=dict(prob_threshold=0.1, logit_scale=50.0),                 # cfg_coco_object.py
    coco_stuff171=dict(short_side=448),                                     # cfg_coco_stuff164k.py
    cityscapes=dict(short_side=560),                                        # cfg_city_scapes.py
)
