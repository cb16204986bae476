"""runtime/frozen.py: the immutable typed records of the start path."""

import pickle

import pytest

from isoinspect.runtime.frozen import Frozen


class Point(Frozen):
    x: int
    y: int = 0
    tags: list = []


class Point3(Point):
    z: int = 5


def test_fields_defaults_and_fresh_mutable_defaults():
    a, b = Point(x=1), Point(x=2, y=3)
    assert (a.x, a.y, b.y) == (1, 0, 3)
    a.tags.append("t")
    assert Point(x=1).tags == []


def test_missing_and_unknown_fields_are_type_errors():
    with pytest.raises(TypeError, match="missing field 'x'"):
        Point()
    with pytest.raises(TypeError, match="unknown field"):
        Point(x=1, colour="red")


def test_immutable_and_replace():
    a = Point(x=1)
    with pytest.raises(AttributeError):
        a.x = 2
    b = a.replace(y=7)
    assert (a.y, b.y, b.x) == (0, 7, 1)
    with pytest.raises(TypeError):
        a.replace(nope=1)


def test_inheritance_equality_dict_and_pickle():
    p = Point3(x=1)
    assert p._fields == ("x", "y", "tags", "z") and p.z == 5
    assert p.to_dict() == {"x": 1, "y": 0, "tags": [], "z": 5}
    assert pickle.loads(pickle.dumps(p)) == p
    assert p != Point(x=1)
    assert "Point3(x=1" in repr(p)
