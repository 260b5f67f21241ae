"""Exercises and student copies for workshops (issue 27), in ARENA's format.

Every notebook has a markdown section ``## Exercises`` after ``## Results`` and before ``## Notes``,
holding two or three numbered exercises::

    ### Exercise 2 · Write `clip_cov_loss`

    > **Difficulty:** 🔴🔴🔴 · **Minutes:** 25 · **Solution:** the cell under *Mechanism* that defines it

    **What to do.** ...

    **How it is checked.** `labkit.check("labkit.nb.n02_entropy_mechanism.clip_cov_loss", clip_cov_loss)` ...

An exercise that asks for a function names its check call; the code cell that holds the reference
solution is tagged ``solution`` (when the reference lives in ``labkit.core``, no cell holds it).

- ``labkit.check(target, fn)`` runs the repository's unit tests of ``target`` (``CHECKS``) against
  ``fn``, with ``fn`` put in the target's place for the duration, and says test by test what passed.
- ``labkit student OUT_DIR`` (``python -m labkit.lab.exercises --student OUT_DIR``) writes every
  notebook with the solution functions' bodies blanked (signature and docstring kept), outputs
  stripped, each exercise's text above its blanked cell and a check cell below it.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import difflib
import hashlib
import inspect
import io
import json
import re
import sys
import textwrap
import types
from importlib import import_module
from pathlib import Path

from labkit.lab.exercise_format import (CHECK_RE, MAX_EXERCISES, MIN_EXERCISES, Exercise, _EXERCISE_RE,  # noqa: F401
                                        _source, exercise_problems, parse_exercises)

__all__ = ["CHECKS", "Exercise", "check", "parse_exercises", "exercise_problems", "blank_functions",
           "student_notebook", "write_student_copies"]

SOLUTION_TAG = "solution"
STUDENT_TAG = "exercise"   # what a blanked solution cell is tagged in a student copy

# target -> the existing unit tests that check it (node ids relative to the repository root).
# A test that binds the function at import time (a parametrize over functions) would test the
# reference whatever the learner wrote, so none is listed here.
CHECKS: dict[str, tuple[str, ...]] = {
    "labkit.nb.n11_context_first.thinker_reward": (
        "tests/test_context_first.py::test_thinker_reward_by_hand",),
    "labkit.nb.n11_context_first.mask_question": (
        "tests/test_context_first.py::test_mask_question_hides_the_colours_and_keeps_the_template",),
    "labkit.nb.n13_multimodal_self_training.select_top": (
        "tests/test_multimodal_self_training.py::test_select_top_keeps_the_highest_scored_correct_responses_per_query",
        "tests/test_multimodal_self_training.py::test_select_top_never_keeps_a_wrong_response_even_with_the_best_score",
        "tests/test_multimodal_self_training.py::test_select_top_breaks_ties_in_sampling_order",
        "tests/test_multimodal_self_training.py::test_select_top_without_scores_is_a_random_order_of_the_correct_ones",
        "tests/test_multimodal_self_training.py::test_select_top_rejects_bad_inputs"),
    "labkit.nb.n13_multimodal_self_training.reward_pass_at_k": (
        "tests/test_multimodal_self_training.py::test_reward_pass_at_k_by_hand",
        "tests/test_multimodal_self_training.py::test_reward_pass_at_k_rejects_bad_inputs"),
    "labkit.nb.n13_multimodal_self_training.choose_temperature": (
        "tests/test_multimodal_self_training.py::test_choose_temperature_takes_the_best_and_breaks_ties_upwards",),
    "labkit.core.grpo.grpo_advantages": (
        "tests/test_rl.py::test_grpo_advantages_by_hand",
        "tests/test_rl.py::test_grpo_population_std_gives_frontier_formula",
        "tests/test_curriculum.py::test_mean_abs_advantage_is_the_frontier_for_binary_groups",
        "tests/test_spear.py::test_threshold_one_on_grpo_advantages_keeps_only_rare_wins"),
    "labkit.core.grpo.drgrpo_advantages": (
        "tests/test_rl.py::test_drgrpo_and_rloo_by_hand",),
    "labkit.core.grpo.ppo_clip_loss": (
        "tests/test_rl.py::test_ppo_clip_by_hand_with_asymmetric_bounds",
        "tests/test_rl.py::test_k3_kl_by_hand_and_penalty",
        "tests/test_rl.py::test_entropy_bonus_lowers_loss"),
    "labkit.core.vision.world.reward": (
        "tests/test_vision.py::test_reward_decomposition_by_hand",),
    "labkit.nb.n02_entropy_mechanism.token_covariance": (
        "tests/test_entropy.py::test_token_covariance_by_hand",
        "tests/test_entropy.py::test_token_covariance_means_span_rows_and_ignore_padding",
        "tests/test_entropy.py::test_token_covariance_rejects_mismatched_shapes"),
    "labkit.nb.n02_entropy_mechanism.clip_cov_loss": (
        "tests/test_entropy.py::test_clip_cov_loss_drops_only_the_chosen_tokens_gradient",
        "tests/test_entropy.py::test_clip_cov_never_picks_tokens_ppo_already_clipped",
        "tests/test_entropy.py::test_clip_cov_equals_ppo_when_no_token_is_in_the_band",
        "tests/test_entropy.py::test_clip_cov_random_choice_follows_the_generator"),
    "labkit.nb.n03_polychromic.polychromic_objective": (
        "tests/test_polychromic.py::test_diversity_and_objective_by_hand",
        "tests/test_polychromic.py::test_objective_rejects_bad_sets"),
    "labkit.nb.n03_polychromic.marginal_advantages": (
        "tests/test_polychromic.py::test_marginal_advantage_all_correct_group_by_hand",
        "tests/test_polychromic.py::test_marginal_advantage_mixed_group_by_hand",
        "tests/test_polychromic.py::test_marginal_advantage_only_counts_given_sets",
        "tests/test_polychromic.py::test_marginal_advantage_bad_inputs"),
    "labkit.nb.n04_self_imitation.sil_weight": (
        "tests/test_spear.py::test_sil_weight_cosine_ramp_by_hand",
        "tests/test_spear.py::test_schedule_bad_inputs"),
    "labkit.nb.n04_self_imitation.BaselineBuffer.median": (
        "tests/test_spear.py::test_baseline_buffer_median_and_recalibration",),
    "labkit.nb.n05_self_hinting.usable_hint": (
        "tests/test_hints.py::test_usable_hint_drops_leaks_and_junk",),
    "labkit.nb.n07_curriculum_bandit.boltzmann": (
        "tests/test_curriculum.py::test_boltzmann_by_hand",),
    "labkit.nb.n07_curriculum_bandit.SECBandit.update": (
        "tests/test_curriculum.py::test_sec_td0_update_by_hand_unsampled_zero",
        "tests/test_curriculum.py::test_sec_unsampled_keep_and_q0_and_alpha",
        "tests/test_curriculum.py::test_uniform_and_sec_are_seeded_and_record_history",
        "tests/test_curriculum.py::test_bandit_finds_the_frontier_of_a_simulated_learner"),
    "labkit.nb.n19_red_team_self_play.game_reward": (
        "tests/test_red_team.py::test_game_reward_hand_values",
        "tests/test_red_team.py::test_game_reward_undecodable_attack_is_a_tie_on_prompt_terms",
        "tests/test_red_team.py::test_bad_inputs"),
    "labkit.nb.n18_self_play_preference.sppo_loss": (
        "tests/test_preference.py::test_sppo_loss_hand_value",
        "tests/test_preference.py::test_sppo_loss_gradient_pulls_the_log_ratio_to_its_target",
        "tests/test_preference.py::test_bad_inputs_raise_one_line_value_errors"),
    "labkit.nb.n18_self_play_preference.minimax_mixture": (
        "tests/test_preference.py::test_minimax_winner_of_the_cyclic_oracle_is_uniform",
        "tests/test_preference.py::test_minimax_mixture_unequal_margins_and_condorcet_winner",
        "tests/test_preference.py::test_bad_inputs_raise_one_line_value_errors"),
    "labkit.nb.n14_policy_reward_coevolution.recycle_group": (
        "tests/test_coevolution.py::test_recycle_uniform_groups_give_one_pointwise_item",
        "tests/test_coevolution.py::test_recycle_mixed_groups_label_follows_the_verifier",
        "tests/test_coevolution.py::test_recycle_bad_inputs"),
    "labkit.nb.n14_policy_reward_coevolution.semi_supervised_reward": (
        "tests/test_coevolution.py::test_semi_supervised_reward_reads_the_verifier_only_on_labelled_prompts",),
    "labkit.nb.n15_self_play_critic.sneaky_reward": (
        "tests/test_self_play_critic.py::test_game_rewards_by_hand",),
    "labkit.nb.n15_self_play_critic.critic_f1": (
        "tests/test_self_play_critic.py::test_critic_f1_counts_exact_names",),
    "labkit.nb.n16_verification.verify_refine_loop": (
        "tests/test_judge.py::test_verify_refine_loop_revises_only_rejected_answers",),
    "labkit.nb.n16_verification.self_data": (
        "tests/test_judge.py::test_self_data_keeps_accepted_and_accepted_revisions_without_ground_truth",),
    "labkit.nb.n17_interaction_rewards.interaction_rewards": (
        "tests/test_interaction_rewards.py::test_interaction_rewards_hand_values",
        "tests/test_interaction_rewards.py::test_interaction_rewards_bad_scores"),
    "labkit.nb.n17_interaction_rewards.whiten": (
        "tests/test_interaction_rewards.py::test_whiten_by_hand_and_token_weights",
        "tests/test_interaction_rewards.py::test_whiten_equal_rewards_give_zero_and_bad_inputs_raise"),
    "labkit.nb.n20_red_queen.descriptor": (
        "tests/test_red_queen.py::test_descriptor_bins_by_hand",
        "tests/test_red_queen.py::test_descriptor_rejects_negative_values"),
    "labkit.nb.n20_red_queen.MapElites.place": (
        "tests/test_red_queen.py::test_archive_keeps_the_strictly_better_elite_per_cell",
        "tests/test_red_queen.py::test_empty_archive"),
    "labkit.nb.n21_misevolution.StrategyMemory.votes": (
        "tests/test_misevolution.py::test_votes_by_hand",
        "tests/test_misevolution.py::test_votes_top_k_and_threshold"),
    "labkit.nb.n21_misevolution.imitate": (
        "tests/test_misevolution.py::test_imitate_copies_only_strictly_better_peers",
        "tests/test_misevolution.py::test_imitate_bad_lengths"),
    "labkit.nb.n23_experience_distillation.distill": (
        "tests/test_experience_distillation.py::test_distill_by_hand",
        "tests/test_experience_distillation.py::test_distill_needs_distinct_families",
        "tests/test_experience_distillation.py::test_distill_drops_inconsistent_tokens",
        "tests/test_experience_distillation.py::test_distill_rejects_bad_arguments"),
    "labkit.nb.n23_experience_distillation.designer_propose": (
        "tests/test_experience_distillation.py::test_designer_proposes_the_slot_that_fixes_the_failures",
        "tests/test_experience_distillation.py::test_designer_uses_the_memory_of_each_failures_moment",
        "tests/test_experience_distillation.py::test_designer_proposes_nothing_better_than_a_guess"),
    "labkit.nb.n24_meta_memory.tournament": (
        "tests/test_meta_memory.py::test_tournament_budget_by_hand",
        "tests/test_meta_memory.py::test_tournament_finds_the_rewarded_slot",
        "tests/test_meta_memory.py::test_tournament_rejects_bad_arguments"),
    "labkit.nb.n24_meta_memory.lora_sft": (
        "tests/test_meta_memory.py::test_lora_sft_trains_only_the_adapter",
        "tests/test_meta_memory.py::test_lora_sft_loss_falls_on_one_users_interactions",
        "tests/test_meta_memory.py::test_lora_sft_bad_inputs"),
    "labkit.nb.n22_value_aware_memory.Memory.update": (
        "tests/test_memory.py::test_update_by_hand",
        "tests/test_memory.py::test_update_moves_every_memory_in_the_context",
        "tests/test_memory.py::test_bad_inputs_give_one_line_errors"),
    "labkit.nb.n22_value_aware_memory.Memory.two_phase": (
        "tests/test_memory.py::test_two_phase_by_hand",
        "tests/test_memory.py::test_update_moves_every_memory_in_the_context",
        "tests/test_memory.py::test_bad_inputs_give_one_line_errors"),
    "labkit.nb.n33_decision_mamba.associative_scan": (
        "tests/test_selective_scan.py::test_associative_scan_is_the_recurrence_by_hand",
        "tests/test_selective_scan.py::test_sequential_equals_parallel",
        "tests/test_selective_scan.py::test_causal_outputs_ignore_later_inputs",
        "tests/test_selective_scan.py::test_gradients_flow_and_agree_between_forms"),
    "labkit.nb.n27_trajectory_evolution.recombine": (
        "tests/test_trajectory_evolution.py::test_recombine_takes_a_head_of_one_and_the_best_move_of_another",),
    "labkit.nb.n27_trajectory_evolution.evolve": (
        "tests/test_trajectory_evolution.py::test_evolve_spends_the_budget_and_stops_on_a_solve",
        "tests/test_trajectory_evolution.py::test_bad_inputs_raise_one_line_value_errors"),
    "labkit.nb.n28_reward_evolution.parse": (
        "tests/test_reward_evolution.py::test_parse_by_hand_precedence_and_associativity",
        "tests/test_reward_evolution.py::test_render_round_trips",
        "tests/test_reward_evolution.py::test_malformed_expressions_raise_one_line",
        "tests/test_reward_evolution.py::test_parse_rejects_non_strings_and_deep_nesting"),
    "labkit.nb.n28_reward_evolution.meta_advantages": (
        "tests/test_reward_evolution.py::test_meta_advantages_by_hand_and_shuffle",),
    "labkit.nb.n29_gym_evolution.step_advantages": (
        "tests/test_gym_evolution.py::test_step_advantages_by_hand",
        "tests/test_gym_evolution.py::test_step_advantages_edge_cases"),
    "labkit.nb.n29_gym_evolution.step_flags": (
        "tests/test_gym_evolution.py::test_step_flags_use_precedence_and_reachability",),
    "labkit.nb.n33_decision_mamba.pser_target": (
        "tests/test_decision_mamba.py::test_pser_target_by_hand",
        "tests/test_decision_mamba.py::test_pser_target_holds_the_past_prediction_fixed",
        "tests/test_decision_mamba.py::test_pser_target_pulls_a_noisy_label_toward_a_good_past_prediction",
        "tests/test_decision_mamba.py::test_pser_target_rejects_bad_inputs"),
    "labkit.nb.n08_creator_solver.adpo_advantages": (
        "tests/test_creator_solver.py::test_adpo_advantages_by_hand",
        "tests/test_creator_solver.py::test_adpo_advantages_nothing_kept_and_bad_inputs"),
    "labkit.nb.n08_creator_solver.creator_rewards": (
        "tests/test_creator_solver.py::test_creator_rewards_by_hand",),
    "labkit.nb.n26_directed_evolution.bit_score": (
        "tests/test_directed_evolution.py::test_bit_score_by_hand",),
    "labkit.nb.n26_directed_evolution.CreditMemory.probs": (
        "tests/test_directed_evolution.py::test_credit_memory_by_hand",
        "tests/test_directed_evolution.py::test_shuffled_control_keeps_the_values_but_not_their_owners"),
    "labkit.nb.n25_tool_evolution.parse_tool": (
        "tests/test_tool_evolution.py::test_parse_tool_by_hand",
        "tests/test_tool_evolution.py::test_tool_text_and_parse_tool_round_trip_every_instruction"),
    "labkit.nb.n25_tool_evolution.merge": (
        "tests/test_tool_evolution.py::test_merge_by_hand",),
    "labkit.nb.n08_creator_solver.eva_select": (
        "tests/test_creator_solver.py::test_eva_select_weights_by_normalised_informativeness",),
    "labkit.nb.n09_data_free_self_play.hop_advantages": (
        "tests/test_data_free_self_play.py::test_hop_advantages_by_hand",
        "tests/test_data_free_self_play.py::test_hop_advantages_differ_from_one_batch_group_and_edges"),
    "labkit.nb.n09_data_free_self_play.consistent": (
        "tests/test_data_free_self_play.py::test_consistent_band_edges_and_bad_inputs",),
    "labkit.nb.n09_data_free_self_play.self_consistency_targets": (
        "tests/test_data_free_self_play.py::test_self_consistency_targets_by_hand",),
    "labkit.nb.n10_task_space.learning_potential": (
        "tests/test_task_space.py::test_learning_potential_by_hand",),
    "labkit.nb.n10_task_space.in_band": (
        "tests/test_task_space.py::test_in_band_edges_and_bad_inputs",),
    "labkit.core.proposer.uncertainty_reward": (
        "tests/test_proposer.py::test_uncertainty_reward_by_hand",
        "tests/test_proposer.py::test_uncertainty_reward_rejects_bad_p"),
    "labkit.nb.n35_diffusion_policies.policy_guidance": (
        "tests/test_diffusion_policies.py::test_policy_guidance_is_the_gradient_of_the_gaussian_log_density",
        "tests/test_diffusion_policies.py::test_policy_guidance_normalises_each_segment_and_rejects_bad_inputs"),
    "labkit.nb.n35_diffusion_policies.guidance_schedule": (
        "tests/test_diffusion_policies.py::test_guidance_schedule_by_hand",),
    "labkit.nb.n35_diffusion_policies.ddim_sample": (
        "tests/test_diffusion_policies.py::test_ddim_sample_returns_the_target_from_any_noise",
        "tests/test_diffusion_policies.py::test_ddim_sample_clips_the_estimate",
        "tests/test_diffusion_policies.py::test_ddim_sample_one_step_is_the_x0_estimate_and_is_differentiable_in_w",
        "tests/test_diffusion_policies.py::test_ddim_sample_rejects_bad_steps"),
    "labkit.nb.n32_multi_agent_planning.group_advantages": (
        "tests/test_multi_agent_planning.py::test_group_advantages_by_hand",),
    "labkit.nb.n32_multi_agent_planning.bayes_ceiling": (
        "tests/test_multi_agent_planning.py::test_bayes_ceiling_by_hand",),
    "labkit.nb.n30_computer_use.failure_imitation_loss": (
        "tests/test_computer_use.py::test_failure_imitation_loss_by_hand_and_its_gradient",),
    "labkit.nb.n30_computer_use.boundary_pick": (
        "tests/test_computer_use.py::test_boundary_pick_by_hand",),
    "labkit.nb.n30_computer_use.judge_step": (
        "tests/test_computer_use.py::test_judge_step_by_hand",
        "tests/test_computer_use.py::test_judge_agrees_with_the_oracle_on_expert_steps"),
    "labkit.nb.n31_world_model.screen_candidates": (
        "tests/test_world_model.py::test_screen_candidates_by_hand",
        "tests/test_world_model.py::test_screen_candidates_equal_the_apps_candidates"),
    "labkit.nb.n31_world_model.world_model_loss": (
        "tests/test_world_model.py::test_world_model_loss_by_hand_and_bad_inputs",
        "tests/test_world_model.py::test_world_model_learns_a_few_transitions_exactly"),
    "labkit.nb.n31_world_model.lookahead": (
        "tests/test_world_model.py::test_lookahead_takes_the_imagined_success",
        "tests/test_world_model.py::test_lookahead_depth_and_discount"),
    "labkit.nb.n34_dichotomy_of_control.contrastive_mi": (
        "tests/test_dichotomy_of_control.py::test_contrastive_mi_by_hand",
        "tests/test_dichotomy_of_control.py::test_contrastive_mi_is_zero_when_f_ignores_the_outcome",
        "tests/test_dichotomy_of_control.py::test_contrastive_mi_leaves_masked_steps_out",
        "tests/test_dichotomy_of_control.py::test_contrastive_mi_rejects_bad_shapes"),
    "labkit.nb.n34_dichotomy_of_control.select_latent": (
        "tests/test_dichotomy_of_control.py::test_select_latent_picks_the_best_value_the_prior_can_draw",
        "tests/test_dichotomy_of_control.py::test_select_latent_rejects_bad_samples"),
    "labkit.nb.n37_foundation_policy.imitation_loss": (
        "tests/test_foundation_policy.py::test_imitation_loss_by_hand",
        "tests/test_foundation_policy.py::test_imitation_loss_leaves_dead_steps_out",
        "tests/test_foundation_policy.py::test_imitation_loss_rejects_bad_shapes"),
    "labkit.nb.n37_foundation_policy.act_with": (
        "tests/test_foundation_policy.py::test_act_with_carries_the_memory_step_by_step",
        "tests/test_foundation_policy.py::test_act_with_cut_resets_the_memory_every_step",
        "tests/test_foundation_policy.py::test_act_with_forgets_the_last_episode_at_t0"),
    "labkit.nb.n36_in_context_rl.sink_attention": (
        "tests/test_in_context_rl.py::test_sink_attention_by_hand",
        "tests/test_in_context_rl.py::test_sink_attention_is_causal",
        "tests/test_in_context_rl.py::test_a_sink_nobody_attends_to_changes_nothing",
        "tests/test_in_context_rl.py::test_a_zero_query_spreads_its_weight_over_the_sink_and_the_past",
        "tests/test_in_context_rl.py::test_sink_attention_rejects_bad_shapes"),
    "labkit.nb.n36_in_context_rl.update_schedule": (
        "tests/test_in_context_rl.py::test_update_schedule_authors_configurations",
        "tests/test_in_context_rl.py::test_update_schedule_partial_only_and_two_full_updates",
        "tests/test_in_context_rl.py::test_update_schedule_rejects_bad_inputs"),
}


# ---------------------------------------------------------------------------- labkit.check

def _repo_root() -> Path:
    from labkit.core.paths import REPO_ROOT

    return Path(REPO_ROOT)


def _nodeids(target: str) -> tuple[str, ...]:
    if not isinstance(target, str) or target not in CHECKS:
        close = difflib.get_close_matches(str(target), list(CHECKS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"labkit.check: unknown target {target!r}; {hint}accepted: the {len(CHECKS)} "
                         f"targets of labkit.lab.exercises.CHECKS, e.g. {next(iter(CHECKS))!r}")
    return CHECKS[target]


def _test_files(target: str, root: Path | None = None) -> list[Path]:
    """The test files of `target`, which must exist: labkit.check runs the repository's tests."""
    root = _repo_root() if root is None else Path(root)
    files = [root / nodeid.split("::")[0] for nodeid in _nodeids(target)]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"labkit.check runs the repository's unit tests, and {missing[0]} is not there "
                         f"(labkit installed from a wheel?): run from a source checkout "
                         f"(git clone, then pip install -e .)")
    return files


def _resolve(target: str):
    """(owner, attribute name, module) for a dotted target: owner is the module, or the class
    for a method (``labkit.nb.n07_curriculum_bandit.SECBandit.update``)."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            module = import_module(".".join(parts[:i]))
        except ModuleNotFoundError as e:
            if e.name != ".".join(parts[:i]):
                raise
            continue
        owner = module
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1], module
    raise ValueError(f"labkit.check: cannot import any module of {target!r}")


def _as_if_defined_in(fn, module, owner):
    """``fn`` with the target module's globals laid over its own: a function written in a notebook
    then calls the reference's helpers and classes (an ``isinstance`` against the module's class
    holds), so that only ``fn`` itself is under test. Wrapped or non-Python callables are kept."""
    if (not isinstance(fn, types.FunctionType) or hasattr(fn, "__wrapped__")
            or fn.__globals__ is vars(module)):
        return fn
    namespace = dict(fn.__globals__)
    namespace.update(vars(module))
    closure = fn.__closure__
    if closure and "__class__" in fn.__code__.co_freevars and isinstance(owner, type):
        cells = list(closure)   # zero-argument super() in a method: its class is now the owner
        cells[fn.__code__.co_freevars.index("__class__")] = types.CellType(owner)
        closure = tuple(cells)
    new = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, closure)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    new.__qualname__, new.__doc__, new.__module__ = fn.__qualname__, fn.__doc__, module.__name__
    new.__annotations__ = dict(getattr(fn, "__annotations__", {}) or {})
    return new


class _Reporter:
    """A pytest plugin: puts the candidate in place once the tests are imported, and keeps one
    outcome per test (the first failure's first line)."""

    def __init__(self, on_collected):
        self.on_collected = on_collected
        self.outcomes: dict[str, tuple[str, str]] = {}
        self.errors: list[str] = []

    def pytest_collection_finish(self, session):
        self.on_collected()

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(_first_line(report))

    def pytest_runtest_logreport(self, report):
        if report.nodeid in self.outcomes and self.outcomes[report.nodeid][0] == "failed":
            return
        if report.failed:
            self.outcomes[report.nodeid] = ("failed", _first_line(report))
        elif report.skipped and report.when in ("setup", "call"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            self.outcomes[report.nodeid] = ("skipped", str(reason).removeprefix("Skipped: "))
        elif report.when == "call" and report.passed:
            self.outcomes[report.nodeid] = ("passed", "")


def _first_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr or "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed"


def check(target: str, fn) -> bool:
    """Run the existing unit tests of ``target`` (a key of ``CHECKS``, e.g.
    ``"labkit.nb.n02_entropy_mechanism.clip_cov_loss"``) against ``fn``.

    For the duration, ``fn`` takes the target's place: the attribute of its module (or class),
    and every module that imported it by name (the test modules). ``fn`` sees the target
    module's globals, so it is tested on its own, with the reference's helpers around it.
    Prints one line per test and a verdict; returns True when every test passed. The original
    is restored whatever happens. Needs the repository's tests/ (a source checkout)."""
    nodeids = _nodeids(target)
    root = _repo_root()
    _test_files(target, root)
    if not callable(fn):
        raise TypeError(f"labkit.check: {target!r} needs a function; got {type(fn).__name__}")
    owner, attr, module = _resolve(target)
    if attr not in vars(owner):
        raise ValueError(f"labkit.check: {target!r} is not defined by {getattr(owner, '__name__', owner)}")
    original = vars(owner)[attr]
    candidate = _as_if_defined_in(fn, module, owner)
    name = target.split(".", len(module.__name__.split(".")))[-1]

    def swap(old, new):
        """Every module-level name bound to `old` (test modules import the target by name) -> `new`."""
        if not isinstance(owner, types.ModuleType):
            return   # a method: the class is shared by every module that imported it
        for mod in list(sys.modules.values()):
            namespace = getattr(mod, "__dict__", None)
            if not isinstance(namespace, dict) or namespace.get("__name__") == "__main__":
                continue
            for key, value in list(namespace.items()):
                if value is old:
                    namespace[key] = new

    import pytest

    reporter = _Reporter(lambda: swap(original, candidate))   # once the test modules are imported
    args = [str(root / nodeid.split("::")[0]) + "::" + nodeid.split("::", 1)[1] for nodeid in nodeids]
    args += ["-q", "-p", "no:cacheprovider", "--capture=sys", f"--rootdir={root}"]
    captured = io.StringIO()
    try:
        setattr(owner, attr, candidate)
        with contextlib.redirect_stdout(captured):
            code = pytest.main(args, plugins=[reporter])
    finally:   # test modules imported during the run bound the candidate: they are put back too
        setattr(owner, attr, original)
        swap(candidate, original)
    if reporter.errors or int(code) in (2, 3, 4, 5) or not reporter.outcomes:
        why = reporter.errors[:1] or [line for line in captured.getvalue().splitlines()
                                      if line.startswith(("ERROR", "E "))][:1] or [f"pytest exit code {int(code)}"]
        raise RuntimeError(f"labkit.check could not run the tests of {target}: {why[0]}")
    files = sorted({nodeid.split("::")[0] for nodeid in nodeids})
    print(f"labkit.check: your {name} against the tests of {target} ({', '.join(files)})")
    for nodeid, (outcome, message) in reporter.outcomes.items():
        test = nodeid.split("::", 1)[-1]
        print(f"  {outcome:<7} {test}" + (f": {message}" if message else ""))
    outcomes = [o for o, _ in reporter.outcomes.values()]
    passed, failed = outcomes.count("passed"), outcomes.count("failed")
    if failed:
        print(f"verdict: not yet: {failed} of {len(outcomes)} tests failed ({passed} passed)")
    else:
        print(f"verdict: correct: all {passed} tests passed" +
              (f" ({len(outcomes) - passed} skipped)" if passed < len(outcomes) else ""))
    return failed == 0 and passed > 0


# ---------------------------------------------------------------------------- student copies

def _message(number: int, name: str) -> str:
    return f"Exercise {number}: write {name} (see the exercise above)"


def _definitions(tree: ast.Module) -> dict:
    """name -> def node: top-level functions as ``f``, methods of top-level classes as ``C.m``."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{item.name}"] = item
    return found


def blank_functions(source: str, messages: dict) -> tuple[str, list[str]]:
    """``source`` with the body of each function named in ``messages`` (``f`` or ``C.m``) replaced
    by ``raise NotImplementedError(message)``; decorators, signature, docstring and everything
    else stay as written. Returns the new source and the names blanked, in source order."""
    tree = ast.parse(source)
    defs = _definitions(tree)
    chosen = sorted((node.lineno, name, node) for name, node in defs.items() if name in messages)
    lines = source.splitlines(keepends=True)
    for _, name, node in reversed(chosen):
        body = node.body
        has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                   and isinstance(body[0].value.value, str))
        rest = body[1:] if has_doc else body
        raise_line = f"raise NotImplementedError({json.dumps(messages[name], ensure_ascii=False)})"
        if rest and rest[0].lineno == node.lineno or has_doc and body[0].lineno == node.lineno:
            # a one-line def: rewrite the whole def from the tree
            stub = copy.deepcopy(node)
            stub.body = ([body[0]] if has_doc else []) + [ast.parse(raise_line).body[0]]
            text = textwrap.indent(ast.unparse(stub), " " * node.col_offset) + "\n"
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            lines[first - 1:node.end_lineno] = [text]
            continue
        if rest:
            start, indent = rest[0].lineno, rest[0].col_offset
            floor = body[0].end_lineno if has_doc else node.lineno
            while start - 1 > floor and (not lines[start - 2].strip() or lines[start - 2].strip().startswith("#")):
                start -= 1   # the body's leading comments go too: they are part of the solution
        else:
            start, indent = body[0].end_lineno + 1, body[0].col_offset
        lines[start - 1:node.end_lineno] = [" " * indent + raise_line + "\n"]
    text = "".join(lines)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text, [name for _, name, _ in chosen]


def _new_id(used: set, *parts) -> str:
    salt = 0
    while True:
        cid = hashlib.sha1(":".join(map(str, parts + (salt,))).encode()).hexdigest()[:8]
        if cid not in used:
            used.add(cid)
            return cid
        salt += 1


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _demoted(ex: Exercise) -> str:
    """The exercise's text as it is repeated above its blanked cell (a bold title, not a
    ``###`` heading, so that the exercises are counted once)."""
    body = _EXERCISE_RE.sub(lambda m: f"**Exercise {m.group(1)} · {m.group(2)}**", ex.text, count=1)
    return body + "\n\n*(The same exercise is under* Exercises *near the end of the notebook.)*"


def _check_source(pairs: list, number_of: dict) -> str:
    lines = []
    for target, name in pairs:
        lines.append(f"# Exercise {number_of[name]}: check your {name} against the unit tests of the "
                     f"reference ({', '.join(sorted({n.split('::')[0] for n in CHECKS.get(target, ())}))})")
    lines += ["import labkit", ""]
    lines += [f"labkit.check({json.dumps(target)}, {name})" for target, name in pairs]
    return "\n".join(lines)


def _signature_imports(node, module) -> list[str]:
    """Imports for the names a library function's decorators, annotations and defaults use."""
    roots = list(node.decorator_list) + ([node.returns] if node.returns is not None else [])
    arguments = node.args
    for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [arguments.vararg, arguments.kwarg]:
        if arg is not None and arg.annotation is not None:
            roots.append(arg.annotation)
    roots += [d for d in arguments.defaults + arguments.kw_defaults if d is not None]
    names = sorted({n.id for root in roots for n in ast.walk(root) if isinstance(n, ast.Name)})
    imports, plain = [], []
    for name in names:
        value = vars(module).get(name)
        if isinstance(value, types.ModuleType):
            imports.append(f"import {value.__name__}" + (f" as {name}" if value.__name__ != name else ""))
        elif value is not None:
            plain.append(name)
    if plain:
        imports.append(f"from {module.__name__} import {', '.join(plain)}")
    return imports


def _library_stub(ex: Exercise, target: str, name: str) -> str:
    """A code cell for an exercise whose reference lives in labkit, not in a notebook cell: the
    reference's signature and docstring, its body blanked."""
    owner, attr, module = _resolve(target)
    fn = vars(owner).get(attr)
    if not isinstance(owner, types.ModuleType) or not isinstance(fn, types.FunctionType) or "." in name:
        raise ValueError(f"Exercise {ex.number} checks {target}, which no cell tagged {SOLUTION_TAG!r} "
                         f"defines and which is not a module-level function: tag the cell that defines {name}")
    source = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(source)
    node = tree.body[0]
    if node.name != name:   # the learner writes it under the name the check call passes
        source = re.sub(rf"\bdef\s+{re.escape(node.name)}\b", f"def {name}", source, count=1)
        node = ast.parse(source).body[0]
    blanked, _ = blank_functions(source, {name: _message(ex.number, name)})
    head = [f"# Exercise {ex.number}: write {name} here (its signature and docstring are {target}'s)"]
    return "\n".join(head + _signature_imports(node, module) + ["", "", blanked.rstrip("\n")])


def _names_in(source: str) -> set:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set(_definitions(tree))
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        for target in getattr(node, "targets", []) + [getattr(node, "target", None)]:
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


def student_notebook(nb: dict, stem: str = "") -> dict:
    """The student copy of a notebook (a dict as json.load gives it; the input is not changed):
    each ``solution`` cell's exercise functions blanked (signature and docstring kept), the
    exercise's text above it and a ``labkit.check`` cell below it; a cell with no exercise
    function becomes a comment; an exercise whose reference lives in labkit gets a stub cell and
    a check cell after its text; every output stripped."""
    nb = copy.deepcopy(nb)
    cells = nb.get("cells", [])
    exercises = parse_exercises(nb)
    by_name = {}   # name -> (exercise, target)
    for ex in exercises:
        for target, name in ex.checks:
            by_name.setdefault(name, (ex, target))
    number_of = {name: ex.number for name, (ex, _) in by_name.items()}
    used = {c.get("id") for c in cells if c.get("id")}
    out, written = [], set()

    def markdown(text, *key):
        return {"cell_type": "markdown", "id": _new_id(used, stem, *key), "metadata": {}, "source": _lines(text)}

    def code(text, *key):
        return {"cell_type": "code", "execution_count": None, "id": _new_id(used, stem, *key),
                "metadata": {}, "outputs": [], "source": _lines(text)}

    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or SOLUTION_TAG not in tags:
            out.append(cell)
            continue
        cell["metadata"]["tags"] = [STUDENT_TAG if t == SOLUTION_TAG else t for t in tags]
        source = _source(cell)
        try:
            defs = set(_definitions(ast.parse(source)))
        except SyntaxError as e:
            raise ValueError(f"{stem}: cell {i}, tagged {SOLUTION_TAG!r}, does not parse: {e}") from None
        names = [n for n in by_name if n in defs]
        if not names:   # a solution cell with no exercise function: the learner writes the cell
            mentioned = _names_in(source)
            ex = next((e for e in exercises if set(re.findall(r"`([\w.]+)`", e.text)) & mentioned),
                      exercises[0] if exercises else None)
            number = ex.number if ex else 1
            if ex is not None:
                out.append(markdown(_demoted(ex), "text", i))
            cell["source"] = _lines(f"# Exercise {number}: write this cell (see the exercise above)\n")
            out.append(cell)
            continue
        blanked, names = blank_functions(source, {n: _message(by_name[n][0].number, n) for n in names})
        names.sort(key=lambda n: by_name[n][0].number)   # stable: source order within an exercise
        shown = []
        for name in names:
            if by_name[name][0] not in shown:
                shown.append(by_name[name][0])
        out += [markdown(_demoted(ex), "text", i, ex.number) for ex in shown]
        cell["source"] = _lines(blanked)
        out.append(cell)
        out.append(code(_check_source([(by_name[n][1], n) for n in names], number_of), "check", i))
        written.update(names)
    after = {}   # markdown cell index -> cells already inserted after it
    for ex in exercises:   # references that live in labkit: a stub cell and a check after the text
        missing = [(t, n) for t, n in ex.checks if n not in written and by_name.get(n, (None,))[0] is ex]
        if not missing:
            continue
        at = next(j for j, c in enumerate(out) if c is cells[ex.cell]) + 1 + after.get(ex.cell, 0)
        extra = []
        for target, name in missing:
            extra.append(code(_library_stub(ex, target, name), "stub", ex.number, name))
            written.add(name)
        extra.append(code(_check_source(missing, number_of), "check", ex.number))
        out[at:at] = extra
        after[ex.cell] = after.get(ex.cell, 0) + len(extra)
    nb["cells"] = out
    return nb


def write_student_copies(out_dir, infos=None) -> list[Path]:
    """Write the student copy of each notebook (default: the whole series) into ``out_dir``."""
    from labkit.core.checks import ParameterError
    from labkit.lab.notebooks import discover, notebooks_dir

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out_dir} is a file; accepted: a directory for the student copies")
    if out.resolve() == Path(notebooks_dir()).resolve():
        raise ParameterError(f"{out_dir} is the notebooks directory: the student copies would overwrite "
                             f"the solutions; accepted: another directory")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for info in discover() if infos is None else infos:
        with open(info.path, encoding="utf-8") as f:
            nb = json.load(f)
        path = out / info.path.name
        path.write_text(json.dumps(student_notebook(nb, info.stem), indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written


def _table(infos) -> str:
    rows = []
    for info in infos:
        with open(info.path, encoding="utf-8") as f:
            nb = json.load(f)
        for ex in parse_exercises(nb):
            checks = ", ".join(name for _, name in ex.checks) or "-"
            rows.append(f"{info.number:>2}  {ex.number}  {ex.stars}  {ex.minutes or '?':>3} min  "
                        f"{ex.title}  [writes: {checks}]")
    return "\n".join(rows)


def main(argv=None) -> int:
    from labkit.core.checks import ParameterError
    from labkit.lab.notebooks import discover, resolve

    ap = argparse.ArgumentParser(prog="python -m labkit.lab.exercises",
                                 description="Workshop exercises: list them, or write student copies.")
    ap.add_argument("notebooks", nargs="*", help="notebooks (02, entropy_mechanism, a path); default: all")
    ap.add_argument("--student", metavar="OUT_DIR", help="write the student copies into OUT_DIR")
    ap.add_argument("--list", action="store_true", help="list the exercises (default without --student)")
    args = ap.parse_args(argv)
    try:
        infos = [resolve(n) for n in args.notebooks] if args.notebooks else discover()
        if args.student:
            for path in write_student_copies(args.student, infos):
                print(f"wrote {path}")
    except (ParameterError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.list or not args.student:
        print(_table(infos))
    return 0


if __name__ == "__main__":
    sys.exit(main())
