"""LabelMeDataset on the real chromosome_pairs set: imagePath, imageData only, bad shapes/files,
polygons outside the image, filter_empty_gt."""
import json
import shutil

import cv2
import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmdet.structures.mask import PolygonMasks
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401
from a2bis_mm.utils.errors import DatasetError

init_default_scope('mmdet')
PIPELINE = [dict(type='LoadMicroscopyImage'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False)]


def _build(root, **kwargs):
    return DATASETS.build(dict(type='LabelMeDataset', data_root=str(root), pipeline=PIPELINE,
                               **kwargs))


@pytest.mark.parametrize('split,images,chromosomes', [('train', 37, 74), ('val', 9, 18)])
def test_chromosome_pairs_counts(shared_data, split, images, chromosomes):
    ds = _build(shared_data / 'chromosome_pairs', data_prefix=dict(img=split))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(ds) == images
    assert sum(len(d['instances']) for d in infos) == chromosomes
    assert all(d['img_path'].endswith('.png') for d in infos)  # imagePath exists
    sample = ds[0]
    assert isinstance(sample['gt_masks'], PolygonMasks) and len(sample['gt_masks']) == 2
    assert sample['img'].shape == (210, 211, 3)
    shape = json.loads(open(infos[0]['img_path'][:-4] + '.json').read())['shapes'][0]
    pts = np.array(shape['points'])
    np.testing.assert_allclose(sample['gt_masks'].masks[0][0], pts.ravel())
    np.testing.assert_allclose(sample['gt_bboxes'].numpy()[0],
                               [*pts.min(0).clip(0), *np.minimum(pts.max(0), (211, 210))],
                               rtol=1e-6)
    assert (sample['gt_bboxes_labels'] == 0).all()


def test_image_data_only_and_bad_files(shared_data, tmp_path, mm_caplog):
    src = sorted((shared_data / 'chromosome_pairs' / 'val').glob('*.json'))
    shutil.copy(src[0], tmp_path / 'a.json')  # no PNG beside it: imageData is used
    (tmp_path / 'sub').mkdir()
    shutil.copy(src[1], tmp_path / 'sub')  # recursive scan
    shutil.copy(src[1].with_suffix('.png'), tmp_path / 'sub')
    ann = json.loads(src[2].read_text())
    ann['shapes'][0]['points'] = ann['shapes'][0]['points'][:2]  # a 2-point polygon
    ann['shapes'][1]['label'] = 'nucleus'  # outside the class map
    ann['shapes'].append(dict(label='chromosome', points=[[1, 1], [20, 1], [20, 9], [1, 9]],
                              group_id=None, shape_type='polygon'))
    (tmp_path / 'c.json').write_text(json.dumps(ann))
    (tmp_path / 'd.json').write_text('')  # empty annotation file
    ann = json.loads(src[3].read_text())
    ann['imagePath'], ann['imageData'] = 'missing.png', None
    (tmp_path / 'e.json').write_text(json.dumps(ann))

    ds = _build(tmp_path)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [d['img_id'] for d in infos] == ['a', 'c', f'sub/{src[1].stem}']
    assert infos[0]['img_path'] == str(tmp_path / 'a.json')
    assert [len(d['instances']) for d in infos] == [2, 1, 2]
    assert infos[1]['instances'][0]['bbox'] == [1.0, 1.0, 20.0, 9.0]
    png = shared_data / 'chromosome_pairs' / 'val' / src[0].with_suffix('.png').name
    sample = ds[0]
    np.testing.assert_array_equal(sample['img'][..., 0], cv2.imread(str(png), -1))
    text = mm_caplog.text
    assert 'c.json: shape 0 (\'chromosome\') has 2 points, a polygon needs 3' in text
    assert "c.json: shape 1 has label 'nucleus' outside the label map" in text
    assert 'd.json is empty or not LabelMe JSON' in text
    assert 'e.json: image' in text and 'missing.png not found and no imageData' in text


def test_label_map_24_classes_and_groups(tmp_path, shared_data):
    ann = json.loads(sorted((shared_data / 'chromosome_pairs' / 'val').glob('*.json'))[0]
                     .read_text())
    square = [[1, 1], [30, 1], [30, 30], [1, 30]]
    ann['shapes'] = [dict(label='X', points=square, group_id=None, shape_type='polygon'),
                     dict(label='7', points=square, group_id=4, shape_type='polygon'),
                     dict(label='7', points=[[40, 40], [50, 60]], group_id=4,
                          shape_type='rectangle'),
                     dict(label='24', points=square, group_id=None, shape_type='polygon')]
    (tmp_path / 'k.json').write_text(json.dumps(ann))
    classes = tuple(str(i) for i in range(1, 23)) + ('X', 'Y')
    label_map = {str(i): i - 1 for i in range(1, 23)}
    label_map.update({'X': 'X', '23': 'X', 'Y': 'Y', '24': 'Y'})
    ds = _build(tmp_path, metainfo=dict(classes=classes), label_map=label_map)
    inst = ds.get_data_info(0)['instances']
    assert [i['bbox_label'] for i in inst] == [22, 6, 23]
    assert len(inst[1]['mask']) == 2 and inst[1]['bbox'] == [1.0, 1.0, 50.0, 60.0]
    assert ds[0]['gt_masks'].areas[1] == pytest.approx(29 * 29 + 10 * 20)
    with pytest.raises(ValueError, match="'Z', not a class"):
        _build(tmp_path, metainfo=dict(classes=classes), label_map={'1': 'Z'})


def _square(x, y, side=20, label='chromosome'):
    return dict(label=label, points=[[x, y], [x + side, y], [x + side, y + side], [x, y + side]],
                group_id=None, shape_type='polygon')


def test_polygon_outside_the_image_is_dropped(tmp_path, shared_data, mm_caplog):
    src = sorted((shared_data / 'chromosome_pairs' / 'val').glob('*.json'))[0]
    ann = json.loads(src.read_text())
    ann['imagePath'] = None  # the embedded imageData (211x210)
    beyond_corner = [[205, 230], [230, 205], [240, 240]]  # its box overlaps the image, the polygon does not
    ann['shapes'] = [_square(10, 10), _square(300, 20), _square(-40, 50), _square(200, 200),
                     dict(_square(0, 0), points=beyond_corner)]
    (tmp_path / 'k.json').write_text(json.dumps(ann))
    ds = _build(tmp_path)
    inst = ds.get_data_info(0)['instances']
    assert [i['bbox'] for i in inst] == [[10.0, 10.0, 30.0, 30.0], [200.0, 200.0, 211.0, 210.0]]
    for k in (1, 2, 4):
        assert f"k.json: shape {k} ('chromosome') lies entirely outside the 211x210 image; shape skipped" \
            in mm_caplog.text
    assert 'shape 3' not in mm_caplog.text  # partly inside: kept, box clipped


def test_filter_empty_gt_drops_files_left_without_shapes(tmp_path, shared_data, mm_caplog):
    src = sorted((shared_data / 'chromosome_pairs' / 'val').glob('*.json'))
    for name, path in zip('abc', src):
        shutil.copy(path, tmp_path / f'{name}.json')
    ann = json.loads(src[1].read_text())
    ann['imagePath'] = None
    ann['shapes'] = [_square(500, 500), dict(_square(1, 1), label='nucleus')]  # all shapes dropped
    (tmp_path / 'b.json').write_text(json.dumps(ann))
    filtered = _build(tmp_path, filter_cfg=dict(filter_empty_gt=True))
    assert [filtered.get_data_info(i)['img_id'] for i in range(len(filtered))] == ['a', 'c']
    assert 'LabelMeDataset: 1 of 3 images have no instance (filter_empty_gt); skipped: b' in mm_caplog.text
    assert len(_build(tmp_path, filter_cfg=dict(filter_empty_gt=True), test_mode=True)) == 3  # evaluation
    assert len(_build(tmp_path)) == 3  # no filter_cfg
    for name in 'ac':
        (tmp_path / f'{name}.json').write_text((tmp_path / 'b.json').read_text())
    with pytest.raises(DatasetError, match='no image of .* is left after filter_cfg'):
        _build(tmp_path, filter_cfg=dict(filter_empty_gt=True))


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='LabelMe folder .*nope does not exist'):
        _build(tmp_path / 'nope')
    (tmp_path / 'x.json').write_text('{')
    with pytest.raises(DatasetError, match=f'LabelMeDataset: no usable LabelMe file below {tmp_path}'):
        _build(tmp_path)
