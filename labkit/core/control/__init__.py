"""Offline-RL substrate for the control notebooks (33 decision mamba; 34-36 can build on it).

- ``world``: ``PointMass``, a batched 2-D reach-the-goal world in torch with a known optimal policy.
- ``data``: behaviour policies of mixed quality, ``make_dataset`` (trajectories with return-to-go),
  ``corrupt_actions`` (action-label noise) and ``SequenceBatch``/``sample_windows`` (the
  (return-to-go, state, action) sequence format of decision transformers).
- ``evaluate``: ``evaluate_policy``, episodes in parallel, normalised return.
- ``models``: ``DecisionTransformer`` (a small causal transformer over the token sequence) and
  ``MLPPolicy`` (behaviour cloning), the baselines the sequence-model notebooks compare against.

Deterministic given a seed (torch.Generator everywhere); nothing here imports from labkit.lab,
labkit.bases or labkit.nb.
"""
from labkit.core.control.data import (BEHAVIOURS, SequenceBatch, Trajectories, behaviour_action, corrupt_actions,
                                      make_dataset, return_to_go, sample_windows,
                                      take_windows)
from labkit.core.control.evaluate import EvalResult, evaluate_policy
from labkit.core.control.models import DecisionTransformer, MLPPolicy
from labkit.core.control.world import PointMass

__all__ = ["PointMass", "BEHAVIOURS", "behaviour_action", "make_dataset", "return_to_go", "corrupt_actions",
           "Trajectories", "SequenceBatch", "sample_windows", "take_windows", "EvalResult", "evaluate_policy",
           "DecisionTransformer", "MLPPolicy"]
