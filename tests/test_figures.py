"""The figures show the data they claim, with labelled axes (units in parentheses) and legends
outside the plotted data: checked on the matplotlib Figures the plotting functions return."""

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from snnrun.commands.probe import build_neuron, fi_figure, neuron_node, trace_figure
from snnrun.run import plots

UNIT = re.compile(r"\S.*\(.+\)")  # "time (ms)", "accuracy (fraction correct)"


def assert_axes_labelled(ax):
    for label in (ax.get_xlabel(), ax.get_ylabel()):
        assert UNIT.search(label), f"axis label without a unit: {label!r}"


def assert_legend_outside(fig, ax):
    fig.canvas.draw()
    legend = ax.get_legend()
    assert legend is not None
    r = fig.canvas.get_renderer()
    assert legend.get_window_extent(r).x0 >= ax.get_window_extent(r).x1, "legend covers the axes"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_learning_curves_plot_training_speed_only_and_the_accuracies_as_logged():
    records = [
        {"step": 0, "phase": "train", "epoch": 1, "samples": 100, "running_accuracy": {}, "images_per_s": 40.0},
        {"step": 1, "phase": "train", "epoch": 1, "samples": 200, "running_accuracy": {"all_activity": 0.5},
         "images_per_s": 42.0},
        {"step": 2, "phase": "train", "epoch": 1, "samples": 300, "running_accuracy": {"all_activity": 0.7},
         "images_per_s": 41.0},
        # the label pass (learning off) is much faster, and its samples count the split, not training
        {"step": 3, "phase": "assign", "samples": 1438, "images_per_s": 150.0},
        {"step": 4, "phase": "test", "test_accuracy": 0.8, "test_images_per_s": 300.0},
    ]
    fig = plots.learning_curves_figure(records)
    top, bottom = fig.axes[:2]
    speed = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in bottom.get_lines()}
    assert speed == {"train: images/s": ([100, 200, 300], [40.0, 42.0, 41.0])}
    acc = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in top.get_lines()}
    assert acc["train: running_accuracy/all_activity"] == ([200, 300], [0.5, 0.7])
    assert acc["test accuracy (0.800)"][1] == [0.8, 0.8]  # the dashed horizontal line
    assert len(acc) == 2
    assert bottom.get_ylabel() == "training speed (images/s)"
    for ax in (top, bottom):
        assert_legend_outside(fig, ax)
    assert_axes_labelled(bottom)
    assert UNIT.search(top.get_ylabel())


def test_learning_curves_prefer_losses_and_skip_empty_records():
    records = [{"phase": "train", "epoch": 1, "samples": 64, "loss": 2.0, "images_per_s": 10.0},
               {"phase": "val", "epoch": 1, "samples": 64, "val_loss": 1.5, "val_accuracy": 0.4}]
    fig = plots.learning_curves_figure(records)
    bottom = fig.axes[1]
    got = {line.get_label(): list(line.get_ydata()) for line in bottom.get_lines()}
    assert got == {"train: loss": [2.0], "val: val_loss": [1.5]}
    assert bottom.get_ylabel() == "loss (per sample)"
    assert plots.learning_curves_figure([{"phase": "test", "n_test": 3}]) is None


def test_most_active_are_the_neurons_that_spiked_most_never_a_silent_one():
    spikes = torch.zeros(10, 6)
    spikes[[1, 3, 5], 4] = 1   # neuron 4: 3 spikes
    spikes[[2, 6], 1] = 1      # neuron 1: 2 spikes
    spikes[7, 5] = 1           # neuron 5: 1 spike
    assert plots.most_active(spikes, 5) == [4, 1, 5]  # neurons 0, 2, 3 never spiked: not shown
    assert plots.most_active(spikes, 2) == [4, 1]
    assert plots.most_active(torch.zeros(10, 3), 5) == []


def test_membrane_figure_plots_the_chosen_traces_with_spike_counts_and_outside_legend():
    torch.manual_seed(0)
    v = torch.randn(50, 4).cumsum(0)
    spikes = torch.zeros(50, 4)
    spikes[[10, 20, 30], 2] = 1
    spikes[[15], 0] = 1
    threshold = torch.tensor([1.0, 2.0, 3.0, 4.0])
    fig = plots.membrane_figure(v, [2, 0], dt=0.5, spikes=spikes, threshold=threshold, unit="mV")
    ax = fig.axes[0]
    traces = [line for line in ax.get_lines() if line.get_label().startswith("neuron")]
    assert [line.get_label() for line in traces] == ["neuron 2 (3 spikes)", "neuron 0 (1 spikes)"]
    for line, n in zip(traces, [2, 0]):
        np.testing.assert_allclose(line.get_xdata(), np.arange(50) * 0.5)
        np.testing.assert_allclose(line.get_ydata(), v[:, n].numpy())
    # spike marks of neuron 2: at its spike times, at its threshold
    marks = [line for line in ax.get_lines() if line.get_marker() == "|"]
    np.testing.assert_allclose(marks[0].get_xdata(), [5.0, 10.0, 15.0])
    np.testing.assert_allclose(marks[0].get_ydata(), [3.0, 3.0, 3.0])
    assert ax.get_ylabel() == "membrane potential v (mV)"
    assert_axes_labelled(ax)
    assert_legend_outside(fig, ax)


def test_raster_figure_places_every_spike_at_its_time_and_neuron():
    s = torch.zeros(20, 3)
    s[[2, 5, 9], [0, 2, 1]] = 1
    fig = plots.raster_figure({"Ae": s, "Ai": torch.zeros(20, 2)}, dt=0.5)
    ax = fig.axes[0]
    points = sorted(map(tuple, ax.collections[0].get_offsets().tolist()))
    assert points == [(1.0, 0.0), (2.5, 2.0), (4.5, 1.0)]
    for a in fig.axes:
        assert UNIT.search(a.get_ylabel())
    assert fig.axes[-1].get_xlabel() == "time (ms)"


def test_confusion_and_weights_figures_show_their_data_with_labelled_axes():
    cm = torch.tensor([[5, 1], [2, 7]])
    fig = plots.confusion_figure(cm)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), cm.numpy())
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "5", "7"]
    assert_axes_labelled(ax)
    assert UNIT.search(fig.axes[1].get_ylabel())  # colorbar

    w = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(4, 3)  # 2x2 images, 3 neurons
    fig = plots.weights_figure(w, (1, 2, 2))
    grid = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(grid[0:2, 0:2], w[:, 0].reshape(2, 2).numpy())  # tile of neuron 0
    np.testing.assert_array_equal(grid[0:2, 2:4], w[:, 1].reshape(2, 2).numpy())
    np.testing.assert_array_equal(grid[2:4, 0:2], w[:, 2].reshape(2, 2).numpy())
    assert_axes_labelled(fig.axes[0])


def test_probe_figures_label_their_axes_with_units():
    t = torch.arange(100, dtype=torch.float32)
    trace = {"t": t, "input": torch.full((100,), 5.0), "v": torch.sin(t / 10), "s": (t % 25 == 0).float()}
    fig = trace_figure(trace, "probe", unit="mV")
    ax_v, ax_i = fig.axes
    np.testing.assert_allclose(ax_v.get_lines()[0].get_ydata(), trace["v"].numpy())
    np.testing.assert_allclose(ax_i.get_lines()[0].get_ydata(), trace["input"].numpy())
    assert ax_v.get_ylabel() == "membrane potential v (mV)" and UNIT.search(ax_i.get_ylabel())
    assert ax_i.get_xlabel() == "time (ms)"
    assert_legend_outside(fig, ax_v)
    fig = fi_figure(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 10.0, 30.0]), "f-I")
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [0.0, 10.0, 30.0])
    assert_axes_labelled(fig.axes[0])
    assert fig.axes[0].get_ylabel() == "firing rate (Hz)"


@pytest.mark.parametrize("preset, unit", [("lif", "mV"), ("diehl_cook", "mV"), ("hh", "mV"), ("izhikevich", "mV"),
                                          ("surrogate_lif", "dimensionless"), ("if_soft_reset", "dimensionless"),
                                          ("mcculloch_pitts", "dimensionless")])
def test_voltage_unit_of_a_preset(preset, unit):
    assert plots.voltage_unit(build_neuron(neuron_node(preset), 1.0)) == unit
