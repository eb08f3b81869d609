# ChromSeg-SSL layout (the paper's chromosome set; NOT in ../shared/data): 1600x1600 G-banded
# metaphases, LabelMe JSON per image below <root>/{train_labelme,test_labelme}/<patient_id>/,
# labels '1'..'24' (also 'X'/'Y') -> 24 classes. Resized 1600 -> 512 as the reference pipeline
# does; JET input. Get the data ready as docs/datasets.md describes, then inherit this file
# instead of chromosome-512.py in a model config.
_base_ = './chromosome-512.py'

data_root = 'data/chromseg_ssl/'
classes = tuple(str(i) for i in range(1, 23)) + ('X', 'Y')
metainfo = dict(classes=classes)
num_classes = len(classes)
# '1'..'22' -> 0..21; X is chromosome 23 and Y 24 in the reference's numeric labels
label_map = {str(i): i - 1 for i in range(1, 23)}
label_map.update({'23': 'X', 'X': 'X', '24': 'Y', 'Y': 'Y'})

train_pipeline = [
    dict(type='LoadMicroscopyImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),  # 1600 -> 512
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='JetColormap'),
    dict(type='PackA2BInputs'),
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, label_map=label_map,
                 data_prefix=dict(img='train_labelme/'), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, label_map=label_map,
                 data_prefix=dict(img='test_labelme/')))
test_dataloader = val_dataloader
