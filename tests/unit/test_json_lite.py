"""runtime/json_lite.py: the same text and values as the json module, without importing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from isoinspect.runtime import json_lite

SAMPLES = [
    {"ociVersion": "1.0.2", "id": "x", "pid": 12, "status": "running", "bundle": "/b",
     "annotations": {}, "owner": "", "list": [], "nested": {"a": [1, 2.5, None, True, False]}},
    {"unicode": "h\u00e9llo \u2603 \"quoted\" \\ \n\t\x01", "big": 1 << 70, "neg": -3,
     "f": 1e-7, "empty": {"x": [], "y": {}}},
    [], {}, "text", 0, None, [[[]]], [{"k": [{"z": 1}]}],
]


@pytest.mark.parametrize("value", SAMPLES, ids=range(len(SAMPLES)))
@pytest.mark.parametrize("indent", [None, 2, 4])
def test_dumps_matches_json(value, indent):
    assert json_lite.dumps(value, indent=indent) == json.dumps(value, indent=indent)


@pytest.mark.parametrize("value", SAMPLES, ids=range(len(SAMPLES)))
def test_loads_round_trips(value):
    text = json.dumps(value, indent=2)
    assert json_lite.loads(text) == json.loads(text)
    assert json_lite.loads(text.encode()) == value


def test_nan_and_odd_keys_fall_back_to_json():
    assert json_lite.dumps({"a": float("nan"), "b": {1: 2}}, indent=2) == \
        json.dumps({"a": float("nan"), "b": {1: 2}}, indent=2)
    assert json_lite.loads('{"x": NaN, "y": -Infinity}')["y"] == float("-inf")


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a": 1} x', "[1,]", "nul"])
def test_bad_documents_are_value_errors(text):
    with pytest.raises(ValueError):
        json_lite.loads(text)


def test_imports_neither_json_nor_re():
    package_parent = os.path.join(sys.prefix, "isoinspect-src")  # the fast launchers' tree
    code = (f"import sys; sys.path[:0] = [{package_parent!r}]; "
            "from isoinspect.runtime import json_lite; "
            "json_lite.dumps(json_lite.loads('{\"a\": [1, \"b\"]}'), indent=2); "
            "print('json' in sys.modules, 're' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, cwd="/", check=False)
    assert out.stdout.split() == ["False", "False"], out.stderr
