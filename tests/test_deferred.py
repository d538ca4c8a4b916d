"""Deferred host work (snnrun/engine/deferred.py), the background checkpoint writer, and the
evaluation path that reads the device once: same values, same order, as doing it at once."""

import threading
import time

import pytest
import torch

from snnrun.engine.deferred import HostQueue, to_host
from snnrun.engine.experiment import build_experiment
from snnrun.engine.evaluation import evaluate
from snnrun.run.checkpoint import CHECKPOINT, PREVIOUS, CheckpointWriter, load_checkpoint
from tests.conftest import TINY

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_items_run_a_batch_late_in_order_with_the_values_they_were_put_with(device):
    q = HostQueue(torch.device(device))
    seen = []
    state = torch.zeros(3, device=device)
    for batch in range(3):
        state += 1  # updated in place after each put: the item must see its own snapshot
        q.put({"s": state, "batch": batch}, lambda h: seen.append((h["batch"], h["s"].tolist())))
        state.mul_(10)
        q.next_batch()
        assert [b for b, _ in seen] == list(range(batch))  # the previous batches' items only
        q.run_ready()
        assert [b for b, _ in seen] == list(range(batch + 1))
    q.put({"s": state, "batch": 3}, lambda h: seen.append((h["batch"], h["s"].tolist())))
    q.run_ready()  # no boundary since: not yet
    assert len(seen) == 3 and len(q) == 1
    q.run_all()
    # 1, then (1*10 + 1) = 11, then 111, then 1110: each value as it was at its put
    assert seen == [(0, [1.0] * 3), (1, [11.0] * 3), (2, [111.0] * 3), (3, [1110.0] * 3)]
    assert all(isinstance(v, list) for _, v in seen)


def test_lag_two_runs_an_item_two_batches_after_its_put():
    q = HostQueue(torch.device("cpu"), lag=2)
    seen = []
    for batch in range(4):
        q.put(batch, seen.append)
        q.next_batch()
        q.run_ready()
        assert seen == list(range(batch))  # batch b's item runs after batch b + 1 was queued
    q.run_all()
    assert seen == [0, 1, 2, 3]


def test_without_deferring_an_item_runs_when_it_is_put():
    q = HostQueue(torch.device("cpu"), defer=False)
    seen = []
    q.put(torch.ones(2), lambda h: seen.append(h.sum().item()))
    assert seen == [2.0] and len(q) == 0


def test_to_host_keeps_structure_and_plain_values():
    t = torch.arange(3)
    out = to_host({"a": [t, (t, 1.5)], "b": "x", "c": None}, snapshot=True)
    assert out["b"] == "x" and out["c"] is None and out["a"][1][1] == 1.5
    assert torch.equal(out["a"][0], t) and out["a"][0].data_ptr() != t.data_ptr()


@pytest.mark.parametrize("background", [False, True])
def test_checkpoint_writer_keeps_order_and_the_previous_file(tmp_path, background):
    w = CheckpointWriter(background=background)
    for i in range(3):
        w.submit(tmp_path, {"i": i, "w": torch.full((4,), float(i))})
    w.wait()
    assert load_checkpoint(tmp_path)["i"] == 2  # the newest; in the background earlier ones may be skipped
    if not background:
        assert torch.load(tmp_path / PREVIOUS, weights_only=True)["i"] == 1
    elif (tmp_path / PREVIOUS).exists():
        assert torch.load(tmp_path / PREVIOUS, weights_only=True)["i"] in (0, 1)
    assert not (tmp_path / (CHECKPOINT + ".tmp")).exists()


def test_a_newer_state_replaces_one_not_yet_written(tmp_path):
    """While the writer cannot start (its lock held here, as a slow disk would), three states
    arrive: only the newest is written, the two before it are skipped."""
    w = CheckpointWriter(background=True)
    with w._cv:  # reentrant: submit takes it too; the writer thread waits for it
        for i in range(3):
            w.submit(tmp_path, {"i": i})
    w.wait()
    assert load_checkpoint(tmp_path)["i"] == 2 and w.skipped == 2
    assert not (tmp_path / PREVIOUS).exists()  # nothing was written before it


def test_the_writer_waits_while_a_cuda_graph_is_captured(tmp_path):
    """A capture (CAPTURE_LOCK held, as GraphRunner and the graphed gradient step hold it) and the
    writer's thread never overlap: a CUDA call from that thread would invalidate the capture."""
    from snnrun.engine.cuda_graph import CAPTURE_LOCK

    w = CheckpointWriter(background=True)
    with CAPTURE_LOCK:
        w.submit(tmp_path, {"i": 0, "w": torch.ones(3)})
        time.sleep(0.3)
        assert not (tmp_path / CHECKPOINT).exists() and w._busy  # taken up, waiting for the lock
    w.wait()
    assert load_checkpoint(tmp_path)["i"] == 0


def test_a_failed_background_write_is_raised_and_leaves_the_last_good_file(tmp_path):
    w = CheckpointWriter(background=True)
    w.submit(tmp_path, {"i": 0})
    w.wait()
    w.submit(tmp_path, {"i": object()})  # not plain data: save_checkpoint refuses it
    with pytest.raises(TypeError, match="not plain data"):
        w.wait()
    assert load_checkpoint(tmp_path)["i"] == 0
    w.wait()  # the error was handed over once


def test_close_writes_what_was_submitted_and_ends_the_thread(tmp_path):
    """A run closes its writer: the last state is on disk and no thread is left per run (a
    multirun's basic launcher runs every job in one process)."""
    w = CheckpointWriter(background=True)
    w.submit(tmp_path, {"i": 0})
    thread = w._thread
    with w._cv:  # the state waits, not yet taken up, when close is asked for
        w.submit(tmp_path, {"i": 1})
    w.close()
    assert load_checkpoint(tmp_path)["i"] == 1
    assert not thread.is_alive() and w._thread is None
    w.submit(tmp_path, {"i": 2})  # still usable after close: a new thread writes it and ends
    w.close()
    assert load_checkpoint(tmp_path)["i"] == 2 and w._thread is None
    assert not [t for t in threading.enumerate() if t is thread]


def test_evaluate_equals_presenting_batch_by_batch(compose_cfg):
    """One transfer at the end gives what reading each batch at once gave: counts, predictions
    (decoded by hand from the counts with the assignment equations) and their order."""
    cfg = compose_cfg("+model=diehl_cook", *TINY, "device=cpu")
    exp = build_experiment(cfg)
    split = exp.data.test
    counts = torch.rand(exp.assignment.n_neurons, exp.n_classes)
    exp.assignment.update(counts.t().repeat_interleave(3, 0), torch.arange(exp.n_classes).repeat_interleave(3))
    torch.manual_seed(7)
    ev = evaluate(exp, split, batch_size=7)
    torch.manual_seed(7)
    exp.network.eval()
    want = torch.cat([exp.present(split.x[i:i + 7]).counts for i in range(0, len(split), 7)])
    assert ev.counts.device.type == "cpu" and torch.equal(ev.counts, want)
    # all_activity by hand: mean count of each class's assigned neurons, classes without neurons never win
    a = exp.assignment.assignments
    scores = torch.stack([want[:, a == k].mean(1) if (a == k).any() else torch.full((len(want),), -1.0)
                          for k in range(exp.n_classes)], 1)
    assert torch.equal(ev.preds["all_activity"], scores.argmax(1))
    assert len(ev.preds["proportion_weighting"]) == len(split) and ev.loss is None
