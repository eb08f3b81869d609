"""Unit tests of the tile grid, the compact masks and their exports (no model needed)."""
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import shapely

from a2bis_mm.apis.exporters import crop_to_polygon, crop_to_rle
from a2bis_mm.apis.tiling import (
    CompactInstances,
    dedup_across_tiles,
    in_core,
    iter_tiles,
    masks_to_crops,
    resample_crop,
    tile_starts,
)


@pytest.mark.parametrize('length,tile,overlap', [(1000, 256, 64), (256, 256, 64), (300, 256, 0),
                                                 (100, 256, 64), (4096, 512, 64)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    ends = np.minimum(starts + tile, length)
    assert starts[0] == 0 and ends[-1] == length
    assert np.all(ends[:-1] - starts[1:] >= overlap)  # neighbours overlap by at least `overlap`
    if length >= tile:
        assert np.all(ends - starts == tile)


def test_tile_cores_partition_the_image():
    tiles = list(iter_tiles(700, 1000, 256, 64))
    ys, xs = np.mgrid[0:700:7, 0:1000:7]
    points = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    owners = np.stack([in_core(points, t, 0.0) for t in tiles])
    assert np.all(owners.sum(axis=0) == 1)
    for t, own in zip(tiles, owners):
        # a core point is at least overlap / 2 from the tile's inner borders
        p = points[own]
        assert np.all((p[:, 0] >= t.x0 + 32) | (t.x0 == 0))
        assert np.all((p[:, 0] <= t.x1 - 32) | (t.x1 == 1000))


def test_iter_tiles_rejects_bad_overlap():
    with pytest.raises(ValueError, match='overlap'):
        list(iter_tiles(100, 100, 64, 64))


def _random_masks(rng, n, shape):
    """Speckled 12x12 blobs at random places (cut at the borders), holes and several parts."""
    masks = np.zeros((n, *shape), dtype=bool)
    for i in range(n):
        y, x = rng.integers(-6, shape[0]), rng.integers(-6, shape[1])
        window = np.zeros(shape, dtype=bool)
        window[max(0, y):y + 12, max(0, x):x + 12] = True
        masks[i] = window & (rng.random(shape) > 0.3)
    masks[0, :, -1] = True  # spans the image from top to bottom along the right border
    return masks


def test_crops_rle_and_polygons_round_trip():
    rng = np.random.default_rng(0)
    masks = _random_masks(rng, 12, (40, 50))
    offsets, crops, index = masks_to_crops(masks)
    assert list(index) == [i for i in range(12) if masks[i].any()]
    for off, crop, i in zip(offsets, crops, index):
        full = masks[i]
        rle = crop_to_rle(crop, off, 40, 50)
        assert rle == {**mask_utils.encode(np.asfortranarray(full.astype(np.uint8))),
                       'counts': mask_utils.encode(
                           np.asfortranarray(full.astype(np.uint8)))['counts'].decode()}
        poly = crop_to_polygon(crop, off)
        assert poly.is_valid and poly.area == full.sum()
        ys, xs = np.nonzero(full)
        inside = shapely.contains_xy(poly, xs + 0.5, ys + 0.5)
        assert inside.all()


def test_polygon_keeps_holes_and_parts():
    crop = np.zeros((9, 12), dtype=bool)
    crop[1:6, 1:6] = True
    crop[3, 3] = False  # a hole
    crop[7:9, 8:12] = True  # a second part
    poly = crop_to_polygon(crop, (100, 200))
    assert poly.geom_type == 'MultiPolygon' and len(poly.geoms) == 2
    assert poly.area == crop.sum() == 24 + 8
    assert not shapely.contains_xy(poly, 103.5, 203.5)
    assert shapely.contains_xy(poly, 109.5, 207.5)


def test_resample_crop_exact_on_a_2x_grid():
    crop = np.ones((4, 6), dtype=bool)
    off, out = resample_crop(crop, (10, 20), (2.0, 2.0), (100, 100))  # to a half-size grid
    assert tuple(off) == (5, 10) and out.shape == (2, 3) and out.all()
    off, out = resample_crop(crop, (10, 20), (0.5, 0.5), (100, 100))  # to a double-size grid
    assert tuple(off) == (20, 40) and out.shape == (8, 12) and out.all()


def test_dedup_across_tiles_keeps_best_of_cross_tile_duplicates():
    tiles = list(iter_tiles(64, 112, 64, 16))  # two tiles: x in [0, 64) and [48, 112)
    assert len(tiles) == 2
    crop = np.ones((6, 6), dtype=bool)
    nudged = crop.copy()
    nudged[0] = False
    insts = CompactInstances(
        (64, 112), np.zeros((4, 5)), np.array([0.6, 0.9, 0.8, 0.7]), np.zeros(4, dtype=np.int64),
        np.array([[57, 10], [57, 10], [57, 11], [20, 20]]), [crop, nudged, crop, crop])
    # 0 and 1: same object from tiles 0 and 1; 2 duplicates 1 but comes from the same tile
    keep = dedup_across_tiles(insts, np.array([0, 1, 1, 0]), tiles, 0.5)
    assert list(keep) == [1, 2, 3]
