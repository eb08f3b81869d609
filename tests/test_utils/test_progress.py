"""Labelled mmengine progress bars of the inference tools."""
import io

from a2bis_mm.utils.progress import track


def test_track_labels_the_bar_and_yields_everything():
    out = io.StringIO()
    assert list(track(range(1000), 1000, 'coco', stream=out)) == list(range(1000))
    redraws = out.getvalue().split('\r')
    # mmengine's format after the label; a fast step is drawn at its start and end only
    assert redraws[0].startswith('coco      [') and redraws[-1].startswith('coco      [>')
    assert '1000/1000' in redraws[-1] and len(redraws) <= 3 and out.getvalue().endswith('\n')
    silent = io.StringIO()
    assert list(track(iter('abc'), 3, 'x', enable=False, stream=silent)) == ['a', 'b', 'c']
    assert silent.getvalue() == ''
