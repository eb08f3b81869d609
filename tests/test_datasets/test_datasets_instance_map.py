"""InstanceMapDataset on cpm15 and consep256 (vs. mmdet CocoDataset on the same RLE), and bad files."""
import shutil

import cv2
import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401

init_default_scope('mmdet')  # dataset pipelines are built in the default scope

CPM15_NUCLEI = dict(image01=351, image02=127, image03=256, image04=144, image05=346, image06=255,
                    image07=292, image08=251, image09=97, image10=218, image11=68, image12=131)
CONSEP_CLASSES = ('other', 'inflammatory', 'epithelial', 'spindle-shaped')


def infos(ds):
    """The data infos (``data_list`` is emptied once the dataset is serialized)."""
    return [ds.get_data_info(i) for i in range(len(ds))]


LOAD = [dict(type='LoadMicroscopyImage'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]


def _cpm15(root, **kwargs):
    return DATASETS.build(dict(type='InstanceMapDataset', data_root=str(root),
                               data_prefix=dict(img='images/', ann='labels/'), **kwargs))


def test_cpm15_counts_and_masks(shared_data):
    ds = _cpm15(shared_data / 'cpm15', split=[f'image{i:02d}' for i in range(10, 13)],
                pipeline=LOAD)
    assert [d['img_id'] for d in infos(ds)] == ['image10', 'image11', 'image12']
    assert [len(d['instances']) for d in infos(ds)] == [218, 68, 131]
    sample = ds[1]
    inst = cv2.imread(str(shared_data / 'cpm15' / 'labels' / 'image11.png'),
                      cv2.IMREAD_UNCHANGED)
    masks = sample['gt_masks'].masks
    assert masks.shape == (68, ) + inst.shape and sample['img'].shape == inst.shape + (3, )
    ids = np.unique(inst)[1:]
    np.testing.assert_array_equal(masks.sum((1, 2)), [(inst == i).sum() for i in ids])
    assert not (masks.sum(0) > 1).any()  # non-overlapping, as the label map
    ys, xs = np.nonzero(inst == ids[0])
    np.testing.assert_array_equal(sample['gt_bboxes'].numpy()[0],
                                  [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert (sample['gt_bboxes_labels'] == 0).all()


def test_cpm15_all_tiles_match_readme(shared_data):
    ds = _cpm15(shared_data / 'cpm15', pipeline=[])
    assert {d['img_id']: len(d['instances']) for d in infos(ds)} == CPM15_NUCLEI


def test_consep_instance_maps_equal_coco_rle(shared_data):
    root = shared_data / 'consep256'
    coco = DATASETS.build(dict(type='CocoDataset', data_root=str(root), ann_file='val.json',
                               data_prefix=dict(img='images/'), test_mode=True,
                               metainfo=dict(classes=CONSEP_CLASSES), pipeline=LOAD))
    maps = DATASETS.build(dict(type='InstanceMapDataset', data_root=str(root),
                               data_prefix=dict(img='images/', ann='labels/'),
                               img_glob='test_*.jpg', inst_suffix='_inst.png',
                               class_suffix='_class.png', metainfo=dict(classes=CONSEP_CLASSES),
                               pipeline=LOAD))
    assert len(coco) == len(maps) == 160
    coco_infos = infos(coco)
    by_name = {d['img_path']: d for d in coco_infos}
    total, per_class = 0, np.zeros(4, int)
    maps_infos = infos(maps)
    for d in maps_infos:
        c = by_name[d['img_path']]
        assert len(d['instances']) == len(c['instances'])
        labels = [i['bbox_label'] for i in d['instances']]
        assert sorted(labels) == sorted(i['bbox_label'] for i in c['instances'])
        total += len(labels)
        per_class += np.bincount(labels, minlength=4)
    assert total == 8047  # README: val nuclei
    assert per_class.tolist() == [652, 1398, 2881, 3116]
    # decoded masks agree pixel for pixel (both RLE, loaded by mmdet's LoadAnnotations)
    idx = next(i for i, d in enumerate(maps_infos) if d['instances'])
    a = maps[idx]
    b = coco[coco_infos.index(by_name[maps_infos[idx]['img_path']])]
    np.testing.assert_array_equal(a['img'], b['img'])
    key = lambda m: m.tobytes()  # noqa: E731  order-free comparison
    assert sorted(map(key, a['gt_masks'].masks)) == sorted(map(key, b['gt_masks'].masks))


def test_bad_files_are_logged_and_skipped(shared_data, tmp_path, mm_caplog):
    src = shared_data / 'cpm15'
    (tmp_path / 'images').mkdir()
    (tmp_path / 'labels').mkdir()
    for name in ('image06', 'image07'):
        shutil.copy(src / 'images' / f'{name}.png', tmp_path / 'images')
        shutil.copy(src / 'labels' / f'{name}.png', tmp_path / 'labels')
    (tmp_path / 'images' / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\ngarbage')
    shutil.copy(src / 'images' / 'image02.png', tmp_path / 'images')
    (tmp_path / 'labels' / 'image02.png').write_bytes(b'')  # empty annotation file
    shutil.copy(src / 'images' / 'image11.png', tmp_path / 'images')
    shutil.copy(src / 'labels' / 'image12.png', tmp_path / 'labels' / 'image11.png')  # wrong size
    shutil.copy(src / 'images' / 'image03.png', tmp_path / 'images')  # no label file at all
    ds = _cpm15(tmp_path, pipeline=[])
    assert [d['img_id'] for d in infos(ds)] == ['image06', 'image07']
    assert [len(d['instances']) for d in infos(ds)] == [255, 292]
    text = mm_caplog.text
    assert 'unreadable image' in text and 'corrupt.png' in text
    assert 'unreadable label map' in text and 'labels/image02.png' in text
    assert 'labels/image03.png does not exist' in text
    assert 'label maps of image11 have shape(s) [(669, 793)], image is (696, 677)' in text

    with pytest.raises(FileNotFoundError, match='without an image'):
        _cpm15(tmp_path, split=['image06', 'image99'], pipeline=[])
    with pytest.raises(ValueError, match='no usable image/label pair'):
        _cpm15(tmp_path, img_glob='corrupt*', pipeline=[])


def test_class_outside_metainfo_is_logged(shared_data, mm_caplog):
    ds = DATASETS.build(dict(type='InstanceMapDataset', data_root=str(shared_data / 'consep256'),
                             data_prefix=dict(img='images/', ann='labels/'),
                             split=['test_11_003.jpg'], inst_suffix='_inst.png',
                             class_suffix='_class.png', metainfo=dict(classes=CONSEP_CLASSES[:3]),
                             pipeline=[]))
    cls = cv2.imread(str(shared_data / 'consep256' / 'labels' / 'test_11_003_class.png'),
                     cv2.IMREAD_UNCHANGED)
    inst = cv2.imread(str(shared_data / 'consep256' / 'labels' / 'test_11_003_inst.png'),
                      cv2.IMREAD_UNCHANGED)
    n_spindle = len(np.unique(inst[cls == 4]))
    assert n_spindle > 0
    assert len(infos(ds)[0]['instances']) == len(np.unique(inst)) - 1 - n_spindle
    assert mm_caplog.text.count('has class 4 outside 1..3; instance skipped') == n_spindle


def test_filter_empty_gt(shared_data, tmp_path, mm_caplog):
    src = shared_data / 'cpm15'
    for sub in ('images', 'labels'):
        (tmp_path / sub).mkdir()
    for name in ('image06', 'image09'):
        shutil.copy(src / 'images' / f'{name}.png', tmp_path / 'images')
        shutil.copy(src / 'labels' / f'{name}.png', tmp_path / 'labels')
    empty = np.zeros_like(cv2.imread(str(src / 'labels' / 'image09.png'), cv2.IMREAD_UNCHANGED))
    cv2.imwrite(str(tmp_path / 'labels' / 'image09.png'), empty)  # a tile without nuclei
    kept = _cpm15(tmp_path, pipeline=[], filter_cfg=dict(filter_empty_gt=True))
    assert [d['img_id'] for d in infos(kept)] == ['image06']
    assert 'InstanceMapDataset: 1 of 2 images have no instance (filter_empty_gt); skipped: image09' \
        in mm_caplog.text
    assert len(_cpm15(tmp_path, pipeline=[], filter_cfg=dict(filter_empty_gt=True), test_mode=True)) == 2
    with pytest.raises(ValueError, match='no image of .* is left after filter_cfg'):
        _cpm15(tmp_path, pipeline=[], filter_cfg=dict(filter_empty_gt=True, min_size=1000))  # tiles < 1000 px
