"""UnlabeledImageFolderDataset on the real metaphase images; recursion and unreadable files."""
import shutil

import pytest
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401

init_default_scope('mmdet')


def test_metaphases_and_bad_files(shared_data, tmp_path, mm_caplog):
    ds = DATASETS.build(dict(type='UnlabeledImageFolderDataset',
                             data_root=str(shared_data / 'metaphase_unlabeled'),
                             pipeline=[dict(type='LoadMicroscopyImage')]))
    assert len(ds) == 4
    info = ds.get_data_info(0)
    assert (info['height'], info['width']) == (1600, 1600) and info['instances'] == []
    assert ds[0]['img'].shape == (1600, 1600, 3)

    src = sorted((shared_data / 'metaphase_unlabeled').glob('*.png'))[0]
    (tmp_path / 'sub').mkdir()
    shutil.copy(src, tmp_path / 'a.PNG')
    shutil.copy(shared_data / 'gbm40' / 'images' / '02.tif', tmp_path / 'sub')
    (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    (tmp_path / 'notes.txt').write_text('not an image')
    flat = DATASETS.build(dict(type='UnlabeledImageFolderDataset', data_root=str(tmp_path)))
    assert [flat.get_data_info(i)['img_id'] for i in range(len(flat))] == ['a']
    assert 'broken.jpg' in mm_caplog.text and 'image skipped' in mm_caplog.text
    deep = DATASETS.build(dict(type='UnlabeledImageFolderDataset', data_root=str(tmp_path),
                               recursive=True))
    assert [deep.get_data_info(i)['img_id'] for i in range(len(deep))] == ['a', 'sub/02']
    with pytest.raises(ValueError, match='no readable'):
        DATASETS.build(dict(type='UnlabeledImageFolderDataset', data_root=str(tmp_path),
                            extensions=('.bmp', )))
