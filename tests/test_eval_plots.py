"""Plots write real PNG files and reject results that do not follow the schema."""
import pytest

from spikedet.eval import plot_map_vs_timesteps, plot_methods

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def results(method="clip-quant", offset=0.0):
    return {
        "dataset": "coco-tiny",
        "method": method,
        "ann": {"map50_95": 0.37 + offset, "map50": 0.52 + offset},
        "snn": {str(t): {"map50_95": 0.37 + offset - 0.2 / t, "map50": 0.52 + offset - 0.2 / t} for t in (2, 4, 8, 16)},
    }


def is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_SIGNATURE)


def test_plot_map_vs_timesteps(tmp_path):
    path = plot_map_vs_timesteps(results(), tmp_path / "plots" / "map_vs_t.png")
    assert path == tmp_path / "plots" / "map_vs_t.png" and is_png(path)


def test_plot_methods(tmp_path):
    path = plot_methods({"a": results("a"), "b": results("b", 0.05)}, tmp_path / "methods.png")
    assert is_png(path)


def test_bad_results():
    bad = results()
    bad["snn"]["x"] = {"map50_95": 0.1, "map50": 0.2}
    with pytest.raises(ValueError, match="snn key 'x' is not an integer"):
        plot_map_vs_timesteps(bad, "unused.png")
    no_ann = results()
    del no_ann["ann"]
    with pytest.raises(ValueError, match="method 'm': results: 'ann' has no number 'map50_95'"):
        plot_methods({"m": no_ann}, "unused.png")


def test_many_methods_get_distinct_colours(tmp_path):
    """Twelve rows (recipes plus fine-tuned networks) stay tellable apart: no colour repeats below 21 lines."""
    from spikedet.eval.plots import method_colours

    assert len(set(method_colours(12))) == 12 and len(set(method_colours(20))) == 20
    assert method_colours(3) == ["C0", "C1", "C2"]
    many = {f"m{i}": results(f"m{i}", 0.01 * (i % 3)) for i in range(12)}
    assert is_png(plot_methods(many, tmp_path / "many.png"))
