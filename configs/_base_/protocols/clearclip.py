# ClearCLIP's evaluation harness (Lan et al., ECCV 2024; github.com/mc-lan/ClearCLIP): its
# configs/cfg_<dataset>.py and the defaults of ClearCLIPSegmentation.__init__ in
# clearclip_segmentor.py. `defaults` hold for every dataset, `datasets` lists what differs;
# docs/protocol.md gives the file of every value (and what could not be read).
defaults = dict(
    short_side=448, max_long_side=2048,  # Resize(scale=(2048, 448), keep_ratio=True)
    resize='mmseg',
    crop_size=448, stride=224,           # slide_crop=448, slide_stride=224 (the segmentor's defaults)
    padding='centre',                    # compute_padsize: centred zero padding to the patch size
    prob_threshold=None,                 # prob_thd=0.0
    area_threshold=None,                 # it has none
    logit_scale=50.0,                    # logit_scale=50
    classnames='sclip',                  # only cls_voc21.txt could be read; the others as SCLIP's
)
datasets = dict(
    voc21=dict(prob_threshold=0.5, classnames='clearclip'),  # cfg_voc21.py; its own cls_voc21.txt
    pascal_context60=dict(prob_threshold=0.15),               # cfg_context60.py
    coco_object=dict(prob_threshold=0.4),                     # cfg_coco_object.py
    cityscapes=dict(crop_size=224, stride=224),               # cfg_city_scapes.py: slide_crop=224
)
