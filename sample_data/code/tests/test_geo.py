import math

import pytest

from sprocket.geo import bounding_box, compass_point, haversine, initial_bearing


def test_haversine_zero():
    assert haversine(51.5, -0.12, 51.5, -0.12) == 0.0


def test_haversine_one_degree_of_latitude():
    # One degree of latitude is about 111.2 km on the mean sphere.
    assert haversine(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-3)


def test_haversine_is_symmetric():
    a = haversine(47.37, 8.54, 46.20, 6.14)
    b = haversine(46.20, 6.14, 47.37, 8.54)
    assert a == pytest.approx(b)


def test_antipodes_do_not_raise():
    assert haversine(0, 0, 0, 180) == pytest.approx(math.pi * 6_371_008.8)


@pytest.mark.parametrize(
    "bearing,name", [(0, "N"), (11, "N"), (12, "NNE"), (90, "E"), (225, "SW"), (359, "N")]
)
def test_compass_point(bearing, name):
    assert compass_point(bearing) == name


def test_initial_bearing_due_east():
    assert initial_bearing(0, 0, 0, 1) == pytest.approx(90.0)


def test_bounding_box():
    assert bounding_box([(1, 2), (-1, 5), (0, -3)]) == (-1, -3, 1, 5)
    with pytest.raises(ValueError):
        bounding_box([])
