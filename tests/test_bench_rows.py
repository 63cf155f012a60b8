"""The benchmark's extra-row options (tools/bench_rows.py): method names, groups and result keys; host-free."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_rows  # noqa: E402


def test_groups_expand_in_order_without_duplicates():
    assert bench_rows.chosen_methods("") == []
    assert bench_rows.chosen_methods("hspace") == ["hspace_supervised", "hspace_pca"]
    assert bench_rows.chosen_methods("boundary, hspace_pca,hspace") == ["boundary", "hspace_pca", "hspace_supervised"]
    assert bench_rows.chosen_methods("all") == ["hspace_supervised", "hspace_pca", "boundary"]


def test_an_unknown_method_is_refused_by_name():
    with pytest.raises(ValueError, match="'jacobian'"):
        bench_rows.chosen_methods("hspace,jacobian")


def test_value_keys():
    assert bench_rows.value_key("hspace_supervised") == "strength"
    assert bench_rows.value_key("hspace_pca") == "strength"
    assert bench_rows.value_key("boundary") == "distance"
    assert bench_rows.value_key("avi_anchored") == "rho"


def test_options_parse_and_no_rows_by_default():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    bench_rows.add_arguments(parser)
    args = parser.parse_args([])
    assert bench_rows.selected(args) == [] and args.extra_methods == []
    args = parser.parse_args(["--hspace-strengths", "0.5, 3", "--boundary-distances=-5,5"])
    bench_rows.selected(args)
    assert args.hspace_strengths == [0.5, 3.0] and args.boundary_distances == [-5.0, 5.0]
