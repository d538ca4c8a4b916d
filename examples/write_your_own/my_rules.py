"""A learning rule of your own, used from a config by ``_target_: my_rules.Instar``.

The protocol (snnrun/components/learning/base.py, ``LearningRule``):

- the config names the connection it learns (``connection: X_H``); snnrun builds the rule with
  ``connection`` (the object: weights ``connection.w`` of shape (n_source, n_target) for a dense
  connection), ``source`` and ``target`` (the neuron groups: spikes ``.s`` of shape (batch, n),
  traces ``.x`` when the group has ``traces: true``) and ``dt``; the other config keys are your
  ``__init__``'s keyword arguments, plus the base's ``nu``, ``reduction``, ``weight_decay``.
- ``update()`` is called every time step while the network learns (after the groups have
  stepped); change ``connection.w`` in place. The base then applies ``weight_decay`` and clamps
  to the connection's ``wmin``/``wmax``.
- ``reduction`` says how a batch's per-sample updates combine: ``self.reduce(dw)`` turns a
  ``(batch, n_source, n_target)`` update into one (``sum`` or ``mean``); a rule that never builds
  per-sample matrices reads ``self.reduction`` itself (as below).
- optional: ``reset_state(batch_size)`` at the start of every presentation, ``presentation_update()``
  once at its end, ``begin_presentation(labels)`` for supervised or reward-driven rules.
"""

from __future__ import annotations

import torch

from snnrun.components.learning.base import LearningRule


class Instar(LearningRule):
    """Grossberg's instar: when a target neuron fires, its input weights move towards the
    presynaptic spikes, dw_ij = nu_post * s_post_j (s_pre_i - w_ij)."""

    def __init__(self, connection, **kw):
        super().__init__(connection, **kw)
        self.updates = 0  # steps that changed the weights (for a quick look; not needed)

    def update(self) -> None:
        b = self.source.s.shape[0]
        s_pre = self.source.s.reshape(b, -1)    # (batch, n_source)
        s_post = self.target.s.reshape(b, -1)   # (batch, n_target)
        w = self.connection.w                   # (n_source, n_target)
        scale = self.nu[1] / b if self.reduction == "mean" else self.nu[1]
        # batch sum of s_post_j (s_pre_i - w_ij) without per-sample matrices
        dw = s_pre.t() @ s_post - w * s_post.sum(0)
        w.add_(dw, alpha=scale)
        self.updates += 1
