"""Label assignment and the all_activity / proportion_weighting decoders on hand-made activity."""

import pytest
import torch

from snnrun.components.decoders import (AllActivityDecoder, LabelAssignment, ProportionWeightingDecoder,
                                        Readout)


def hand_made():
    # 4 neurons, 3 classes. Training counts per sample (rows) and labels:
    counts = torch.tensor([
        [5.0, 0.0, 1.0, 0.0],   # class 0
        [3.0, 0.0, 1.0, 0.0],   # class 0
        [0.0, 6.0, 2.0, 0.0],   # class 1
        [1.0, 0.0, 3.0, 4.0],   # class 2
    ])
    labels = torch.tensor([0, 0, 1, 2])
    return counts, labels


def trained():
    counts, labels = hand_made()
    a = LabelAssignment(4, 3)
    a.update(counts, labels)
    return a


def test_assignment_rates_proportions_and_labels():
    a = trained()
    # mean counts per class: class0 = [4, 0, 1, 0], class1 = [0, 6, 2, 0], class2 = [1, 0, 3, 4]
    assert a.rates.t().tolist() == [[4, 0, 1, 0], [0, 6, 2, 0], [1, 0, 3, 4]]
    assert a.assignments.tolist() == [0, 1, 2, 2]
    assert a.proportions[2].tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    assert a.proportions[0].tolist() == pytest.approx([0.8, 0.0, 0.2])


def test_assignment_accumulates_with_alpha_and_ignores_silent_neurons():
    counts, labels = hand_made()
    a = LabelAssignment(5, 3)
    a.update(torch.cat([counts, torch.zeros(4, 1)], 1), labels)
    a.update(torch.cat([counts, torch.zeros(4, 1)], 1), labels, alpha=1.0)
    assert a.rates[0].tolist() == [8, 0, 2]
    assert a.proportions[4].tolist() == [0, 0, 0]  # a silent neuron has no proportions (not NaN)


def test_all_activity_and_proportion_weighting_predictions():
    a = trained()
    test = Readout(torch.tensor([
        [9.0, 0.0, 0.0, 0.0],   # neuron 0 (class 0) -> 0
        [0.0, 1.0, 0.0, 0.0],   # neuron 1 (class 1) -> 1
        [0.0, 0.0, 2.0, 2.0],   # class-2 neurons -> 2
        [0.0, 3.0, 4.0, 0.0],   # all_activity: class1 = 3, class2 = 4/2 = 2 -> 1
    ]))
    assert AllActivityDecoder().predict(test, a, 3).tolist() == [0, 1, 2, 1]
    # proportion weighting of the last sample: class1 = 3*1.0 = 3; class2 = (4 * 3/6 + 0) / 2 = 1
    assert ProportionWeightingDecoder().predict(test, a, 3).tolist() == [0, 1, 2, 1]
    # where they differ: neuron 2 (class 2) has proportion 0.5 for its class, neuron 1 has 1.0
    test2 = Readout(torch.tensor([[0.0, 2.4, 5.0, 0.0]]))
    assert AllActivityDecoder().predict(test2, a, 3).tolist() == [2]  # class2 = 5/2 = 2.5 > 2.4
    assert ProportionWeightingDecoder().predict(test2, a, 3).tolist() == [1]  # 5*0.5/2 = 1.25 < 2.4


def test_assignment_scores_equations():
    a = trained()
    c = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    # all_activity: score_k = sum_{a_i = k} c_i / n_k; assignments [0, 1, 2, 2]
    assert AllActivityDecoder().class_scores(Readout(c), a, 3).tolist() == [[1.0, 2.0, 3.5]]
    # proportion_weighting: score_k = sum_{a_i = k} p_ik c_i / n_k
    p = a.proportions
    expected = [1 * p[0, 0], 2 * p[1, 1], (3 * p[2, 2] + 4 * p[3, 2]) / 2]
    got = ProportionWeightingDecoder().class_scores(Readout(c), a, 3)[0]
    assert got.tolist() == pytest.approx([float(x) for x in expected])


def test_class_without_neurons_never_wins_a_silent_sample():
    a = LabelAssignment(2, 3)
    a.update(torch.tensor([[0.0, 3.0], [2.0, 0.0]]), torch.tensor([1, 2]))  # class 0 gets no neuron
    silent = Readout(torch.zeros(1, 2))
    assert AllActivityDecoder().predict(silent, a, 3).tolist() == [1]
    assert ProportionWeightingDecoder().predict(silent, a, 3).tolist() == [1]


def test_assignment_decoders_need_the_assignment_and_read_any_readout_size():
    for d in (AllActivityDecoder(), ProportionWeightingDecoder()):
        assert d.needs == {"assignment"}
        d.check(7, 3)  # label assignment works for any number of neurons
        with pytest.raises(ValueError):
            d.predict(Readout(torch.zeros(1, 4)), None, 3)
        with pytest.raises(ValueError):
            d.predict(Readout(torch.zeros(1, 4)), trained(), 2)  # class counts disagree


def test_state_roundtrip():
    a = trained()
    b = LabelAssignment(1, 1)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.assignments, b.assignments) and b.n_classes == 3
