"""The notebooks' effect claims, asserted on the mean over five workshop seeds (``pytest -m slow``).

A single notebook run never fails because an effect did not show on its seed: it prints a verdict
per claim (:func:`labkit.verdict`) and records the value. The claims are asserted here, where they
belong, on the mean over ``SEEDS`` with a margin: the lower end of the one-sided 95% interval of
the mean, ``mean - t(0.95, n-1) * s / sqrt(n)``, must clear the claimed bound (the upper end for
an upper bound). A claim the toy does not reproduce is listed with ``reproduced=False`` and its
diagnosis: a strict xfail, so the day it starts to hold, this suite says so and the notebook's
text must change.

Runs go to ``$LABKIT_EFFECTS_DIR/<NN>/`` (default: a temporary directory). A finished workshop
run found anywhere under that directory is reused when it has the same seed, no parameter
overrides, status ``ok`` and the same notebook code as now; anything else is run again. (The
substrate's code is not compared: after a change to labkit that moves numbers, use a fresh
directory.) Reproduce a table of the claims with
``labkit run NN --scale workshop --seed 0 1 2 3 4`` (its summary shows each claim's mean and the
share of seeds where it held, ``held/<name>``).

Cost: about 25 CPU-minutes per seed for the whole series (stop 5); with 2 workers about 65 minutes.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

SEEDS = (0, 1, 2, 3, 4)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Claim:
    notebook: str
    name: str  # a verdict the notebook records (labkit.verdict(name, ...))
    above: float | None = None
    below: float | None = None
    reproduced: bool = True
    why: str = ""  # for a claim not reproduced: what the toy does instead, and the diagnosis

    @property
    def id(self) -> str:
        return f"{self.notebook}-{self.name}"


C14 = ('every judge-rewarded arm collapses (true acc static .022, coevolve .092, spark .063; rlvr .935): GRPO divides each group by its std, so small p(yes) differences on the 80% unlabelled groups become full-size advantages and the policy follows the judge within 10-20 steps; the co-evolving judge learns from ~3 labelled groups a step and loses the race')

BASE_22 = ("the reading base tiny-cases lost its 2-digit add/sub (16-17% right even with the right case shown), "
           "so failures carry the right procedure and outcome-driven Q separates little (helpful .24, "
           "distractors .19); two rebuilds kept the arithmetic but lost the reading (stop 5)")

CLAIMS: list[Claim] = [
    # 11 DoGe (doge): question-masked Thinker rewarded by a frozen text-only Solver, then GRPO, on a scarce pool of
    # 8 tiny-vlm images, at equal policy rollouts, lr 3e-5. Measured 2026-12-05 at 01f7930 (seeds 0-4, round 2)
    Claim("11", "reading_min", above=0.9),
    Claim("11", "solver_placement", above=0),
    Claim("11", "acc_gain_doge_vs_grpo", above=0, reproduced=False,
          why="-.055 -.020 +.045 -.025 +.020 (mean -.007): every arm stays at the cold start (.815); the scarce "
              "pool costs GRPO nothing at this budget, so there is no scarcity gap for stage 1 to close"),
    Claim("11", "masked_desc_gain_doge_vs_grpo", above=0, reproduced=False,
          why="-.165 -.055 +.070 +.015 +.005: stage 1 does not improve the masked descriptions (base .691, doge "
              ".668); its groups are mostly flat or differ by the Solver's sampling noise, which GRPO's std "
              "division makes full-size"),
    Claim("11", "acc_gain_doge_vs_shuffled", above=0, reproduced=False,
          why="-.025 +.020 +.035 -.010 -.005: stage 1 moves answers too little for its signal to show in them "
              "(masked descriptions: doge .668 vs shuffled .629)"),
    Claim("11", "acc_gain_rich_vs_scarce", above=0, reproduced=False,
          why="-.025 -.030 +.015 -.060 +.020: the regime check fails; 24 steps at lr 3e-5 do not overfit 8 images, "
              "and fresh images give GRPO no more than the pool"),
    # 13 M-STAR (mstar): iterative vs continuous RFT, PRM reranking, Reward-Pass@2 temperature, on tiny-vlm at equal
    # solver rollouts (4 iterations x 20 queries x 8 responses). Measured at ef22d84 (seeds 0-4, round 2)
    Claim("13", "prm_step_acc", above=0.8),
    Claim("13", "prm_rerank_exact_gain", above=0),
    Claim("13", "acc_gain_continuous_vs_iterative", above=0, reproduced=False,
          why="+.007 +.030 +.017 -.037 -.023 (mean -.001, lower -.028): both take the same steps at the same peak lr and "
              "neither moves the base's accuracy (.823 / .821 vs .823); only Adam's state and the schedule's restarts "
              "differ over 4 short iterations, and the paper's smaller data interval is not varied here"),
    Claim("13", "acc_gain_prm_vs_continuous", above=0),
    Claim("13", "desc_gain_prm_vs_continuous", above=0),
    Claim("13", "acc_gain_mstar_vs_prm", above=0, reproduced=False,
          why="+.003 -.013 -.002 -.047 -.018 (mean -.015, lower -.034): Reward-Pass@2 saturates (base .95-1.0 at T .6 and "
              "1.0 on 4 probe queries), so the tie-break picks T 1.4 in 16 of 20 iterations; hotter samples cost a little"),
    Claim("13", "acc_gain_mstar_vs_iterative", above=0, reproduced=False,
          why="+.045 +.052 +.058 -.013 +.005 (mean +.029, lower -.001): the PRM's gain carries it on 3 seeds; the adaptive "
              "temperature gives a little back and continuous adds nothing, so it misses the 95% bound"),
    # 00 the map: the generic loop on the substrate. Measured stop 5: +.173 (.150-.206)
    Claim("00", "loop_reward_gain", above=0),
    # 12 Vision-SR1 with the authors' KL (beta .01) at the cold start's final lr 1e-4. Measured stop 5 (seeds 0-4)
    Claim("12", "desc_solve_gain_sr1", above=0),
    Claim("12", "desc_solve_gain_sr1_counterbias", above=0),
    Claim("12", "reading_min", above=0.9),
    Claim("12", "acc_gain_sr1_counterbias", above=0, reproduced=False,
          why="-.005 +.095 +.015 +.030 +.010: the cold start's descriptions already solve .989 of the "
              "counter-bias set, so there is little for SR1 to fix there"),
    Claim("12", "acc_kept_every_method", above=-0.05, reproduced=False,
          why="-.060 -.040 -.055 -.015 -.045: outcome and sr1 stay within 2 points of the cold start, but the "
              "sr1_no_acc ablation (no accuracy term) loses 4-6 points on two seeds"),
    Claim("12", "control_acc_gain_sr1", above=0, reproduced=False,
          why="+.025 -.010 +.045 +.010 -.005: out of the collapse regime, outcome no longer loses answers "
              "for SR1 to save in the control"),
    # 18 SPPO / SPO at matched preference budgets (K = 5). Measured stop 5 (seeds 0-4)
    Claim("18", "winrate_gain_sppo", above=0, reproduced=False,
          why="+.031 +.014 +.013 .000 -.014: at K = 5 and eta = 8 SPPO's last iterate is about level with the "
              "base under the Bradley-Terry oracle; it mostly pushes losers down"),
    Claim("18", "winrate_gain_sppo_vs_dpo", above=0),
    Claim("18", "avg_iterate_closer_spo_vs_rm", above=0),
    Claim("18", "last_iterate_closer_spo_vs_rm", above=0),
    Claim("18", "avg_iterate_closer_sppo_vs_rm", above=0, reproduced=False,
          why="+.018 -.110 +.011 -.154 -.058: at eta = 8 SPPO steps like multiplicative weights with a large "
              "step, jumps round the cycle and sticks in a corner where all-one-style groups give no pair; the "
              "guarantee needs eta of order 1/sqrt(T)"),
    Claim("18", "last_iterate_closer_sppo_vs_rm", above=0, reproduced=False,
          why="-.140 -.110 +.183 -.130 +.247: the last iterate sits in one corner of the cycle or another"),
    # 22 MemRL / AgentFly with an executor that reads the cases (base tiny-cases). Measured stop 5 (seeds 0-4)
    Claim("22", "improvement_over_passes_memrl", above=0),
    Claim("22", "improvement_over_passes_agentfly", above=0),
    Claim("22", "distractor_q_fall", above=0),
    Claim("22", "last_pass_gain_memrl_vs_similarity", above=0.1, reproduced=False,
          why=BASE_22),
    Claim("22", "last_pass_gain_agentfly_vs_similarity", above=0.1, reproduced=False, why=BASE_22),
    Claim("22", "first_pass_gain_memrl_vs_bandit", above=0, reproduced=False, why=BASE_22),
    Claim("22", "last_pass_gap_memrl_vs_bandit", above=-0.05, reproduced=False, why=BASE_22),
    # 01 tiny reasoner (GRPO). Measured stop 5: acc_gain +.182 (.171-.197), entropy_drop +.318
    Claim("01", "acc_gain", above=0.15),
    Claim("01", "entropy_drop", above=0),
    # 02 entropy mechanism. Measured stop 5: GRPO entropy drop +.303; KL-Cov 2.42x entropy, pass@8 +.019;
    # Clip-Cov (whole top band) 2.99x entropy, pass@8 -.017
    Claim("02", "entropy_drop_grpo", above=0),
    Claim("02", "entropy_ratio_kl_cov", above=2),
    Claim("02", "passk_gain_kl_cov", above=0),
    Claim("02", "entropy_ratio_clip_cov", above=2),
    Claim("02", "passk_gain_kl_cov_vs_best_baseline", above=0, reproduced=False,
          why="-.015 +.006 +.009 -.006 .000: KL-Cov's +.019 pass@8 over GRPO is matched by the best of six "
              "tuned baselines (entropy bonus .003/.01/.03, clip-higher .24/.28/.35: .886-.901)"),
    Claim("02", "entropy_ratio_clip_cov_random", above=2, reproduced=False,
          why="1.04x (1.11 1.07 .99 1.01 1.02): 2% of the tokens drawn from the top band carry a small share of "
              "the batch's covariance, so the rest still drives entropy down as under GRPO"),
    Claim("02", "passk_gain_clip_cov_random", above=0, reproduced=False,
          why="+.003 +.022 -.006 -.015 +.006: it trains like GRPO (entropy .173 against .167)"),
    Claim("02", "passk_gain_clip_cov", above=0, reproduced=False,
          why="-.003 -.012 -.009 -.046 -.012: detaching the whole top-20% covariance band removes the tokens "
              "that carry the learning signal (1.1x the batch's net covariance); pass@1 stays below the base"),
    # 03 polychromic PPO. Measured stop 5: distinct correct +.083 (lower +.023), pass@16 +.056 (lower -.007),
    # distinct correct vs GRPO + entropy bonus +.067 (lower -.001)
    Claim("03", "distinct_correct_gain", above=0),
    Claim("03", "passk_gain", above=0, reproduced=False,
          why="+.120 +.110 +.045 -.045 +.050: seed 3 goes the other way and keeps the 95% bound below 0"),
    Claim("03", "distinct_correct_gain_vs_entropy_bonus", above=0, reproduced=False,
          why="+.120 +.010 +.050 -.005 +.160: on two seeds an entropy bonus keeps about as many distinct "
              "correct answers; lower bound -.001"),
    # 04 SPEAR on the chain task. Measured stop 5 (replayed advantages on one scale in both arms): tool-rate
    # rise +.296, SPEAR - GRPO hard accuracy -.009, recalibration +.023 (lower bound -.014)
    Claim("04", "tool_rate_early_rise_spear", above=0.2),
    Claim("04", "acc_hard_gain_spear", above=0, reproduced=False,
          why="SPEAR - GRPO = -.003 -.024 -.006 -.014 +.002: both double the base by calling the product more "
              "often; neither learns in 40 steps to use the reply better, the step self-imitation should help"),
    Claim("04", "acc_hard_gain_recalibration", above=0, reproduced=False,
          why="+.004 +.007 +.092 -.003 +.016: positive on 4 seeds of 5 but driven by seed 2, where replaying "
              "stale advantages (earned partly by the decayed tool bonus) collapsed the arm to .025"),
    # 05 SAGE in the authors' mode (escalate within a step), with an unhinted resample control at equal rollouts
    Claim("05", "informative_gain_sage", above=0),
    Claim("05", "informative_gain_sage_vs_resample", above=0),
    Claim("05", "informative_gain_sage_fixed_hints", above=0),
    Claim("05", "acc_hard_gain_sage", above=0, reproduced=False,
          why="-.030 -.020 +.010 -.010 +.015: the self-written hints carry little (they lift the base's hard "
              "pass@1 from .034 to .05-.06, procedural hints to .11-.20), and most of SAGE's extra informative "
              "groups come from the extra samples, as the resample control shows"),
    Claim("05", "acc_hard_gain_sage_vs_resample", above=0, reproduced=False,
          why="-.035 .000 -.025 -.010 +.045: at equal rollouts the hints add nothing measurable"),
    Claim("05", "acc_hard_gain_sage_fixed_hints", above=0, reproduced=False,
          why="-.015 -.020 +.040 .000 -.015: even good hints do not turn into no-hint accuracy at 60 steps; "
              "a 1-2 point gain cannot be resolved with 5 seeds x 200 draws"),
    # 06 BuPO, the authors' setting (layer 1 of 4, 10% of the steps). Measured stop 5: GRPO - base +.177,
    # BuPO - GRPO -.021 (every seed negative)
    Claim("06", "acc_gain_grpo", above=0),
    Claim("06", "acc_gain_bupo_vs_grpo", above=0, reproduced=False,
          why="BuPO ends below GRPO on every seed (-.020 -.024 -.051 -.007 -.001): layer 1's internal policy "
              "is a poor one (pass@1 .05) whose gradient reaches only the tied embedding and layers 0-1"),
    # 07 SEC. Measured stop 5 (seeds 0-4): worst curriculum - base +.063, SEC - uniform informative +.102,
    # r(Q, frontier) .850 (lower bound .799), SEC/uniform - fixed orders +.055, SEC - uniform acc +.014 (lower +.000006)
    Claim("07", "gain_worst_curriculum_vs_base", above=0),
    Claim("07", "informative_gain_sec_vs_uniform", above=0),
    Claim("07", "q_tracks_frontier", above=0.8, reproduced=False,
          why="mean r = .850 but the 95% lower bound is .799 (seeds .844 .900 .774 .829 .903): in seed 2 a "
              "too-hard arm keeps the Q of an early mixed group while its success rate is 0; alpha = 0.5 is "
              "a short, noisy memory"),
    Claim("07", "gain_adaptive_vs_fixed_orders", above=0),
    # holds by a hair: lower bound +.000006 (seeds +.008 -.002 +.022 +.037 +.007)
    Claim("07", "acc_gain_sec_vs_uniform", above=0),
    # 15 SPC self-play critic (base tiny-critic, chain world labkit.core.chains). Measured at c28d787 (seeds 0-4)
    Claim("15", "f1_gain_spc_vs_random", above=0, reproduced=False,
          why="-.013 -.009 -.055 -.036 -.018: every trained critic (SPC .118, random .144, oracle .129) ends below the "
              "base (.261) on natural off-by-one errors; GRPO on the +1/-1 game outcome teaches a critic that rarely "
              "places its flag right to flag less (right chains accepted more, errors named less), and the sneaky "
              "generator keeps writing random digits because no kind of error is harder for such a critic"),
    Claim("15", "f1_gain_spc_vs_base", above=0, reproduced=False,
          why="-.099 -.143 -.134 -.190 -.149: the game lowers the critic F1 on natural errors (see spc_vs_random); "
              "without the authors KL 0.1 all arms collapse to all-right within 7 rounds"),
    # 16 verification (judge substrate, base tiny-judge). Measured at ab1b2c0 (seeds 0-4): refine - round 0 +.098
    # (lower +.075), refine - resample +.024 (lower +.003), SELF - no filter +.050 (lower +.013)
    Claim("16", "f1_gain_rubric_vs_yesno", above=0, reproduced=False,
          why="+.008 +.015 +.001 -.017 -.007: the rubric computes the value right (.854) but then marks 37% of "
              "the right answers as not matching it; comparing two 4-5 digit numbers written apart is the "
              "weak step of the 4-layer judge, so its F1 (.723) equals plain yes/no's"),
    Claim("16", "acc_gain_refine_vs_round0", above=0),
    Claim("16", "acc_gain_refine_vs_resample", above=0),
    Claim("16", "acc_gain_self_vs_none", above=0),
    Claim("16", "acc_gain_self_vs_star", above=0, reproduced=False,
          why="-.172 -.196 -.242 -.178 -.228: STaR filters with the ground truth and SELF with its own judge; "
              "SELF's kept data is .838 right against STaR's 1.0, so STaR trains to .98 and SELF to .78"),
    # 21 misevolution (safety world, base tiny-aligned). Measured at e24e32b (seeds 0-4): proxy drift +.305
    # (lower .255), KL anchor slows it +.117, imitation speeds memory drift +.106; controls below .05
    Claim("21", "model_drift_proxy", above=0.1),
    Claim("21", "kl_anchor_slows_drift", above=0),
    Claim("21", "model_control_no_drift", below=0.05),
    Claim("21", "memory_drift_proxy", above=0.1, reproduced=False,
          why=".063 .125 .156 .078 .172 (lower .073): at similarity threshold .7 a lone frozen agent stores "
              "an answered forbidden request only when its own free sample violates (1-3%), so 300 rounds "
              "leave it at .13; imitation among agents is what multiplies it (diffusion_speedup)"),
    Claim("21", "memory_control_small", below=0.05),
    Claim("21", "diffusion_speedup", above=0),
    Claim("21", "diffusion_control_small", below=0.05),
    # 20 Digital Red Queen (Core War, base tiny-redcode). Measured stop 7 at 5f209af (seeds 0-4): valid warriors
    # .809 (lower .779); DRQ - static generality +.312 (lower +.088); slope +.040 (lower +.018); beats past .628
    Claim("20", "valid_warrior_rate", above=0.5),
    Claim("20", "generality_gain_drq_vs_static", above=0),
    Claim("20", "generality_slope_drq", above=0),
    Claim("20", "drq_beats_past_champions", above=0.5),
    Claim("20", "generality_gain_drq_vs_random", above=0, reproduced=False,
          why="-.037 -.030 +.032 +.103 +.003: uniform random edits under the same Red Queen objective are as "
              "general (.669 vs .683); they are always valid, so at equal proposals they get 1.24x the battles"),
    # 19 red-team self-play (safety world, base tiny-redteam). Measured stop 7 at e8d6b97 (seeds 0-4): self-play
    # cuts held-out ASR from .354 to .021 (drop +.333, lower +.288)
    Claim("19", "asr_drop_selfplay_vs_base", above=0),
    Claim("19", "robust_gain_selfplay_vs_frozen_attacker", above=0, reproduced=False,
          why=".000 -.062 +.021 -.021 .000: a floor; training against the frozen attacker already takes held-out "
              "ASR to .008 (self-play .021): the exact judge's word rule transfers to the held-out families"),
    Claim("19", "robust_gain_selfplay_vs_frozen_attacker_avg", above=0, reproduced=False,
          why="+.010 -.056 +.010 -.021 -.003: the same floor for the averaged iterates (.031 against .019)"),
    Claim("19", "diversity_gain_selfplay_vs_frozen_defender", above=0, reproduced=False,
          why="-.722 +.902 +.262 +.117 +.005: the last attacker's family entropy swings with the seed; on seed 0 "
              "the self-play attacker collapsed onto one family with 5% valid attacks"),
    Claim("19", "diversity_gain_selfplay_vs_frozen_defender_avg", above=0, reproduced=False,
          why="-.238 +.175 +.257 +.374 +.243 (lower -.062): positive on 4 seeds of 5, seed 0's collapse keeps "
              "the bound below 0"),
    Claim("19", "over_refusal_gap_frozen_attacker_vs_selfplay", above=0, reproduced=False,
          why="-.052 -.021 -.021 +.104 +.031: both defenders over-refuse little (.052 and .060 of benign requests)"),
    # 14 policy-reward co-evolution (carry world, base tiny-judge, labels for 20% of prompts). Measured at e0dd159
    # (seeds 0-4): the frozen yes/no judge prefers truncated answers (+.233) and the static arm is hacked (hack gap
    # .697, lower .582); the co-evolving judges do not keep the policy (docs/notes/14_policy_reward_coevolution.md)
    Claim("14", "blind_spot_gap", above=0),
    Claim("14", "hack_gap_static", above=0.2),
    Claim("14", "hack_gap_closed_coevolve", above=0, reproduced=False,
          why="+.827 -.176 -.040 -.034 +.561 (lower -.192): " + C14 + "; the gap closes only after the collapse, "
              "when every recycled item says n and the judge refuses everything (seeds 0, 4); else it drifted to yes"),
    Claim("14", "hack_gap_closed_spark", above=0, reproduced=False,
          why="-.139 +.737 +.743 -.214 +.714 (lower -.107): " + C14 + "; spark judge refuses the broken policy on "
              "seeds 1, 2, 4 (gap ~0), says yes to it on seeds 0, 3"),
    Claim("14", "hack_gap_spark", below=0.1, reproduced=False,
          why="+.992 +.002 +.001 +.797 -.148 (mean .329): a race decided per seed; a one-token judge cannot check "
              "values, only length and format"),
    Claim("14", "judge_acc_gain_spark_vs_static", above=0, reproduced=False,
          why="-.139 +.737 +.743 -.203 +.477 (lower -.120): high only where spark judge learned to refuse a policy "
              "that is already broken"),
    Claim("14", "true_acc_gain_spark_vs_static", above=0, reproduced=False,
          why=".000 .000 .000 +.133 +.070 (lower -.017): " + C14),
    Claim("14", "true_acc_gain_spark_vs_rlvr", above=0, reproduced=False,
          why="-.947 -.923 -.940 -.757 -.797: i.i.d. sums, so RLVR on the labelled 20% learns the same skill (.935) "
              "while the judge-rewarded arms collapse"),
    Claim("14", "bestof4_gain_selfjudge", above=0, reproduced=False,
          why=".000 .000 .000 -.047 -.023: measured on collapsed policies (0-18% right); the self-judge cannot tell "
              "a near miss from the right answer"),
    # 17 CoMAS interaction rewards (copies of tiny-judge as solver, critic and scorer). Measured at 54e3edb
    # (seeds 0-4): scorer gap before RL +.270 (lower +.252); CoMAS - base +.010 (lower +.006); CoMAS - coin +.019
    # (lower +.013); 4 agents - 2 +.004 (lower +.001); solver-only - coin +.031 (lower +.023). Small but paired:
    # every arm samples the held-out answers from the same draws
    Claim("17", "scorer_gap_base", above=0),
    Claim("17", "acc_gain_comas_vs_base", above=0),
    Claim("17", "acc_gain_comas_vs_coin", above=0),
    Claim("17", "acc_gain_more_agents", above=0),
    Claim("17", "acc_gain_solver_only_vs_coin", above=0),
    # 33 Decision Mamba (point-mass world, 30% action-label noise). Measured stop 7 at e8d6b97 (seeds 0-4): noise
    # costs DT .245 of return (lower .162); PSER keeps DM's predictions nearer the true actions (+.071, lower .065)
    Claim("33", "noise_hurts_dt", above=0),
    Claim("33", "pser_fits_less_noise", above=0),
    Claim("33", "dm_vs_dt_noisy", above=0, reproduced=False,
          why="-.079 -.009 -.054 -.213 -.079: DT ends above DM under noise (.710 vs .623) and also sits nearer "
              "the true actions on corrupted positions (.502 vs .576): at 1000 steps (DM 33k, DT 27k parameters) "
              "the decision transformer fits the noisy labels less than the mamba mixer"),
    Claim("33", "pser_gain_noisy", above=0, reproduced=False,
          why="+.004 -.026 +.034 -.073 +.089: PSER moves DM's predictions toward the true actions (+.071) but "
              "not enough to change the return (.623 vs .618 without it)"),
    # 27 SE-Agent on countdown, equal model calls. Measured on eedd31a (seeds 0-4): vs MCTS +.102 (lower +.057)
    Claim("27", "solve_gain_se_vs_bon", above=0, reproduced=False,
          why="-.028 (lower -.051; -.030 -.050 +.005 -.015 -.050): best-of-N is pass@32 (answers are checkable), "
              "the distance-to-target signal concentrates calls on close but dead prefixes; only the authors' "
              "alternative-strategy revision (new openings) keeps SE near best-of-N"),
    Claim("27", "solve_gain_se_vs_mcts", above=0),
    Claim("27", "solve_gain_se_vs_control", above=0, reproduced=False,
          why="-.021 (lower -.073; -.015 -.095 +.050 +.005 -.050): random parents, cuts and openings do as well; "
              "the gain over plain prefix resampling comes from diversity, not from the score signal"),
    Claim("33", "dm_vs_dt_clean", above=0, reproduced=False,
          why="-.018 -.015 -.009 -.018 -.068: on clean labels DT is slightly better (.954 vs .929)"),
    # 23 Experience distillation (EvolveR principles, MemSkill controller + designer) on unseen task families.
    # Measured at d13d190, seeds 0-4, workshop (docs/notes/23_experience_distillation.md)
    Claim("23", "principles_vs_cases_unseen", above=0, reproduced=False,
          why="+.293 +.100 +.210 -.090 -.050 (mean +.093, lower -.064): with EvolveR's update every retrieved "
              "principle shares the outcome, so spurious surface/noise principles distilled early beside the true "
              "rule keep high scores and outrank it on some seeds (true-rule share of the bank .10-.33); "
              "credit to the applied principle only: unseen .913 vs cases .727"),
    Claim("23", "principles_vs_none_unseen", above=0.1),
    Claim("23", "principles_gain_control", above=-0.05, below=0.05),
    Claim("23", "evolving_vs_fixed_skills_unseen", above=0),
    Claim("23", "evolving_vs_fixed_skills_control", above=-0.05, below=0.05),
    # 24 Meta-memory (memevolve: the authors' tournament over a memory genome vs random search at 840 evaluated tasks
    # vs shuffled fitness; ltm: retrieval vs per-user LoRA vs hybrid on tiny-cases). Measured at 6d7b758, seeds 0-4,
    # workshop (round 2; part A unchanged since round 1 at c1310a7); docs/notes/24_meta_memory.md
    Claim("24", "evolved_vs_base", above=0, reproduced=False,
          why="+.055 +.095 .000 +.040 -.010 (mean +.036, lower -.005): one fitness on 40 tasks has a sampling error "
              "(~.06) as large as the gaps between neighbouring designs, and 3 rounds of 3 random redesigns move "
              "the base a few modules; held-out evolved .857 vs raw cases .821, oracle design .978"),
    Claim("24", "evolved_vs_random", above=0, reproduced=False,
          why="-.035 -.040 -.130 +.020 +.100 (mean -.017, lower -.098): random search scores 21 distinct genomes "
              "with the same 840 tasks, the tournament 9 redesigns of one base; its last population is above "
              "random search's (.838 vs .805) but its winner is not"),
    Claim("24", "evolved_vs_shuffled", above=0, reproduced=False,
          why="+.055 +.105 -.035 .000 -.025 (mean +.020, lower -.036): with shuffled scores the tournament keeps "
              "its moves and does about as well: at this budget selection carries little beyond the redesigns"),
    Claim("24", "retrieval_vs_none", above=0.1),
    Claim("24", "lora_growth", above=0),
    Claim("24", "hybrid_vs_best", above=0),
    Claim("24", "memory_gain_control", below=0.05, reproduced=False,
          why="+.083 +.042 -.010 +.047 +.057 (mean +.044, upper +.076): the claim reads the best of three noisy "
              "memory arms (48 requests x 4 users each) against no memory, which sat below a guess (.229); no arm "
              "gains by itself (retrieval +.035, lora +.015, hybrid +.003)"),
    # 32 Multi-agent planning (videochat-m1): two agents with 2 looks each and one mid-run token vs independent
    # agents + soft vote, the token shuffled across episodes, and one agent with all 4 looks. Measured at e7a9f9b
    # (seeds 0-4): cpp .810, vote .785, shuffled .802, single .948; docs/notes/32_multi_agent_planning.md
    Claim("32", "cpp_vs_vote", above=0, reproduced=False,
          why="-.010 +.070 +.025 +.009 +.030 (lower -.003): the message team covers 2 of the 3 asked frames on every seed; "
              "the message-conditioned second look never learned to go to the unseen frame in 1000 steps"),
    Claim("32", "cpp_vs_shuffled", above=0, reproduced=False,
          why="+.002 -.002 +.013 +.010 +.020 (lower -.000): the token carries little; both arms sit near the two-count ceiling"),
    Claim("32", "cpp_vs_single", above=0, reproduced=False,
          why="-.157 -.157 -.118 -.129 -.128 (lower -.155): at equal looks the single agent holds all four in one memory "
              "and covers all 3 asked frames; splitting the budget did not ease learning"),
    # 29 Gym evolution (agentgym, agentevolver) on labkit.core.gym, authors' iter_num 4 / sample_num 3, GRPO arms 20
    # updates x 64 episodes. Measured on 2ae831b (seeds 0-4, round 2); round 1 (3 iterations, 2 samples, 10 updates,
    # 3b1966c) had evol vs random +.054 (lower +.035) and adca vs shuffled +.020 (lower +.002): see the lab record.
    Claim("29", "gain_evol_vs_bc", above=0, reproduced=False,
          why="+.043 -.003 -.040 -.012 -.012 (mean -.005, lower -.033): exploration success on the re-explored "
              "training instances climbs .27 -> .38 but held-out stays at BC (.221 vs .226; base .220): the kept wins "
              "are episodes the agent already plays, so retraining is self-distillation on those instances"),
    Claim("29", "gain_evol_vs_random", above=0, reproduced=False,
          why="+.040 -.005 +.000 +.032 +.052 (mean +.024, lower -.000): keeping wins mostly avoids the harm of "
              "training on own failures (random keep .198 < base .220); held in round 1 (+.054, lower +.035)"),
    Claim("29", "gain_adca_vs_outcome", above=0, reproduced=False,
          why="-.010 +.005 +.010 -.053 +.013 (mean -.007, lower -.033): flags are exact (GOOD 1.0 in wins, .30 in "
              "failures) but episodes have <= 3 actions and alpha .1 moves only early steps; all GRPO arms leave "
              "the base (.214) by < .025, within the noise of 400 held-out episodes"),
    Claim("29", "gain_adca_vs_shuffled", above=0, reproduced=False,
          why="+.057 -.015 +.013 -.020 +.027 (mean +.013, lower -.018): as adca vs outcome; round 1 +.020 lower +.002"),
    Claim("29", "gain_navigate_vs_outcome", above=0, reproduced=False,
          why="-.043 +.000 +.033 -.018 -.010 (mean -.008, lower -.034): the hint raises the guided rollouts' "
              "success .30 -> .49, but the stripped update (off-policy tokens at ratio 1) does not carry it to the "
              "plain prompt"),
    # 30 Computer use (seagent, evocua) on labkit.core.screens (mail held out), equal episodes per arm, each arm
    # trained 3 times per seed. Measured round 2 at 75af38c (seeds 0-4): judge .864 (lower .859); SEAgent above
    # outcome-only GRPO +.190 (lower .083), on mail +.240 (lower .097); above its shuffled-judge control +.595
    # (lower .530); corrections above boundary alone +.189 (lower .065), on mail +.206 (lower .078);
    # docs/notes/30_computer_use.md
    Claim("30", "judge_accuracy", above=0.8),
    Claim("30", "seagent_gain", above=0),
    Claim("30", "seagent_gain_heldout", above=0),
    Claim("30", "seagent_vs_shuffled", above=0),
    Claim("30", "boundary_gain", above=0, reproduced=False,
          why="+.098 -.080 +.050 +.017 +.155 (mean +.048, lower -.036): the boundary score per (app, difficulty) "
              "puts half to two thirds of the episodes on difficulty 1 for the whole run (the harder families stay "
              "near p = 0 in 16 iterations), and the policy's features are shared by every family, so what the "
              "uniform arm learns on easy tasks already carries; the groups it wastes on hard tasks cost little"),
    Claim("30", "boundary_gain_heldout", above=0, reproduced=False,
          why="+.152 -.078 +.042 +.050 +.160 (mean +.065, lower -.028): the same diagnosis as boundary_gain"),
    Claim("30", "correction_gain", above=0),
    Claim("30", "correction_gain_heldout", above=0),
    # 31 World model (webevolver) on labkit.core.screens: three rounds of self-improvement with a co-evolving world
    # model, every arm 400 real episodes a round (round 1: the same random play). Measured round 2 at 5362553
    # (seeds 0-4): M's next screen exact .507 (lower .472); the oracle (the same new tasks in the real app) +.065
    # (lower +.052); look-ahead +.168 over the same policy greedy (lower +.143), +.011 on mail (lower +.002), +.168
    # over the shuffled M. Round 1 (one round, 03d1f12): synthetic +.020 (lower +.003); docs/notes/31_world_model.md
    Claim("31", "world_model_acc", above=0.3),
    Claim("31", "synthetic_gain", above=0, reproduced=False,
          why="+.027 -.040 +.007 +.007 +.053 (mean +.011, lower -.022): real-only self-improvement climbs .059 -> "
              ".097 -> .115 over the rounds and M's imagined successes add about a point, while the oracle (the same "
              "new tasks played in the real app) adds +.065: the regime pays, M's fidelity is the gap. M writes the "
              "right page on every page change but its widget order (drawn per task) 1.5% of the time, and 4.7% of "
              "the imagined episodes the judge keeps replay as real successes (one round: +.020, lower +.003)"),
    Claim("31", "synthetic_gain_heldout", above=0, reproduced=False,
          why="+.007 -.073 -.027 +.027 +.020 (mean -.009, lower -.049): M writes only lines seen on the training "
              "apps and imagines only training-app tasks"),
    Claim("31", "synthetic_vs_shuffled", above=0, reproduced=False,
          why="+.073 +.007 -.020 +.007 +.040 (mean +.021, lower -.013): the judge keeps 12% of M's imagined "
              "episodes and 6% of the shuffled model's, but so few of M's are real successes that the two sets "
              "teach about as much"),
    Claim("31", "oracle_gain", above=0),
    Claim("31", "lookahead_gain", above=0),
    Claim("31", "lookahead_gain_heldout", above=0),
    Claim("31", "lookahead_vs_shuffled", above=0),
    # 34 Dichotomy of control (the authors' bandit and a slippery 4x4 FrozenLake, each beside its deterministic
    # control). Measured at f1c92d1 (seeds 0-4): DoC above DT by +.371 in the bandit (lower .342) and +.144 on the
    # slippery lake (lower .112); deterministic controls match (bandit -.000, lake -.018, lower -.092);
    # DT asked for 1 in the bandit gets .532 (overclaim +.468); docs/notes/34_dichotomy_of_control.md
    Claim("34", "doc_vs_dt_bandit", above=0),
    Claim("34", "doc_vs_dt_bandit_deterministic", above=-0.05, below=0.05),
    Claim("34", "dt_overclaim_bandit", above=0.3),
    Claim("34", "doc_vs_dt_lake", above=0),
    Claim("34", "doc_vs_dt_lake_deterministic", above=-0.1),
    Claim("34", "stochastic_gap_lake", above=0),
    Claim("34", "consistency_gain_lake", above=0),
    # 35 Diffusion policies (PGD, DSRL) on the point mass. Measured at 7fd8f33 (seeds 0-4): guidance raises the
    # synthetic actions' log-likelihood under the agent by +.336 (lower .309); PGD-trained agents above unguided
    # by +.167 (lower +.009); DSRL above the frozen policy by +.371 (lower .276) and above SAC by +.345 (lower .110);
    # docs/notes/35_diffusion_policies.md
    Claim("35", "pgd_loglik_gain", above=0),
    Claim("35", "pgd_dynamics_vs_world_model", above=0, reproduced=False,
          why="-.0075 -.0133 -.0073 -.0084 -.0103 (lower -.0117): the point mass is linear up to its walls, so the "
              "one-step model is near exact (.0007 over 5 steps) and does not compound; PGD's segments carry the "
              "small denoiser's error (.010, below unguided .016)"),
    Claim("35", "pgd_vs_unguided", above=0),
    Claim("35", "pgd_vs_real", above=0, reproduced=False,
          why="+.020 -.273 -.162 -.346 -.494 (lower -.436): with 240 of 256 samples synthetic, the small MLP "
              "denoiser's dynamics and reward errors cost the agent more than on-policy actions gain it "
              "(real .921, PGD .670, unguided .503); the near-exact world model reaches .962"),
    Claim("35", "dsrl_vs_base", above=0),
    Claim("35", "dsrl_vs_fixed_noise", above=0, reproduced=False,
          why="-.078 +.185 -.091 -.118 -.071 (lower -.153): w = 0 already gives the cloned policy's mean chunk, a "
              "shrunken expert chunk (.544 against .139 with fresh noise); DSRL's sampled noise reaches .510 in "
              "1600 chunks and has not passed it"),
    Claim("35", "dsrl_vs_finetune", above=0, reproduced=False,
          why="-.197 +.305 +.009 +.174 +.315 (lower -.085): DSRL .510, fine-tuning .388 with a wide spread "
              "(.26-.60): fine-tuning through the 8-step chain is unstable across seeds but wins on seed 0"),
    Claim("35", "dsrl_vs_sac", above=0),
    # 37 Foundation policy (RAPTOR): a GRU student distilled from per-drone LQR teachers on a planar quadrotor
    # population (the authors' sampler), flown on held-out drones. Measured at 8f47114 (seeds 0-4): held-out success
    # GRU .988, MLP (as many parameters) .910, nominal LQR .177, GRU with memory cut .173, oracle LQRs 1.000;
    # gru_vs_mlp +.077 (lower +.016), gru_near_oracle -.013 (lower -.029); docs/notes/37_foundation_policy.md
    Claim("37", "gru_vs_mlp", above=0),
    Claim("37", "gru_vs_nominal", above=0),
    Claim("37", "gru_vs_cut", above=0),
    Claim("37", "gru_near_oracle", above=-0.1),
    # 08 Creator and solver (eva, Agent0): self-labelled GRPO on the tiny base, equal solver rollouts. Measured on
    # 7fd8f33 (seeds 0-4): band labels right .704 (lower .663); the creator moves practice into the band +.243
    # (lower .208); no arm beats the static set or the base; docs/notes/08_creator_solver.md
    Claim("08", "pseudo_label_acc_band", above=0.5),
    Claim("08", "acc_gain_eva_vs_uniform", above=0, reproduced=False,
          why="-.051 -.016 -.037 -.028 -.020 (mean -.030, lower -.044): with majority-vote rewards eva's reward gap "
              "is 1 on every split group, so evolution drifts to wider, unsettled tasks whose pseudo-labels are "
              "right less often (.378 vs uniform .531); every arm loses width-2 accuracy, eva most"),
    Claim("08", "acc_gain_agent0_vs_static", above=0, reproduced=False,
          why="-.041 +.018 -.013 -.017 .000 (mean -.011, lower -.031): the creator finds the band on 2-digit add/sub, "
              "but there the majority labels the solver trains on are right only .43 of the time (static .39), and "
              "self-labelled GRPO reinforces the wrong ones: width-2 accuracy falls in every arm"),
    Claim("08", "frac_informative_gain_agent0_vs_static", above=0),
    Claim("08", "acc_gain_agent0_vs_easy_to_hard", above=0, reproduced=False,
          why="+.042 +.046 +.006 +.029 -.022 (mean +.020, lower -.007): positive on 4 of 5 seeds, not above 0 at "
              "95%; the fixed curriculum spends its last third on 3-digit tasks whose majority labels are wrong"),
    Claim("08", "acc_gain_agent0_vs_base", above=0, reproduced=False,
          why="-.039 -.032 +.006 +.016 -.043 (mean -.019, lower -.045): self-labelled GRPO sharpens 1-digit tasks "
              "(.72 to .76-.82) and loses 2-digit ones (.25-.31 to .11-.23); the net is about zero or below"),
    # 09 Data-free self-play (ttcs, dr-zero): TTRL vs TTCS (+ oracle variants) on 2-digit add/sub test questions
    # (tiny); HRPO vs GRPO in a lookup-tool world (tiny-calc-chain). Measured at 449d2e7 (seeds 0-4): labels .708
    # (lower .692), TTRL +.090 (lower +.072), HRPO vs GRPO at equal rollouts +.023 (lower +.005), vs one batch group
    # +.030 (lower +.014); docs/notes/09_data_free_self_play.md
    Claim("09", "pseudo_label_acc_test", above=0.5),
    Claim("09", "acc_gain_ttrl_vs_base", above=0),
    Claim("09", "acc_gain_ttcs_vs_ttrl", above=0, reproduced=False,
          why="-.015 -.023 -.113 -.008 -.033 (mean -.038, lower -.079): the rule synthesiser's variants are fresh draws "
              "of the test questions' own form, labelled right as often (.72) as the test questions (.71), and the band "
              "keeps 83% of them; so TTCS only moves half the rollouts off the questions that are scored"),
    Claim("09", "acc_gain_oracle_vs_ttcs", above=0, reproduced=False,
          why=".005 .018 .108 .010 .030 (mean +.034, lower -.006): true labels on the variants (trained labels .85 vs "
              ".72) give back TTRL's accuracy (.501 vs .505), no more; one seed carries the mean"),
    Claim("09", "acc_gap_hrpo_vs_grpo", above=-0.03, reproduced=False,
          why="-.063 -.013 -.010 -.042 -.029 (mean -.031, lower -.052): with a quarter of GRPO's rollouts HRPO reaches "
              ".407 against .439 (base .170); within 3 points on 3 of 5 seeds, not at 95%"),
    Claim("09", "acc_gain_hrpo_vs_grpo_equal", above=0),
    Claim("09", "acc_gain_hrpo_vs_batch", above=0),
    # 10 Task spaces (exit, webrl): ExIt histories (attempt + the frozen judge rubric) as tasks vs one-step and fixed
    # 2-step training; WebRL failure-seeded curriculum with an ORM band and KL vs the fixed set (tiny-judge, carry
    # world, equal solver rollouts). Measured at 3e23ab8 (seeds 0-4): rubric value right .838 (lower .813), ORM .872
    # (lower .842), revising before RL +.144 (lower +.111); no mechanism comparison holds;
    # docs/notes/10_task_space.md
    Claim("10", "feedback_value_acc", above=0.5),
    Claim("10", "orm_acc", above=0.5),
    Claim("10", "self_improve_gain_base", above=0),
    Claim("10", "acc_gain_exit_vs_single", above=0, reproduced=False,
          why=".000 -.020 +.040 -.040 +.020 (mean .000, lower -.030): every arm ends at ~.90 after two revisions "
              "(base .875): the base errs by sampling slips, RL sharpens toward its greedy answer in every arm, and a "
              "revision mostly copies the rubric value, which the base already does"),
    Claim("10", "acc_gain_exit_vs_fixed2", above=0, reproduced=False,
          why="-.005 -.010 +.030 +.005 +.005 (mean +.005, lower -.010): exit .897 vs fixed2 .892; ExIt's histories "
              "are depth ~1 revisions like the fixed depth, and the last attempt is at the same ceiling"),
    Claim("10", "acc_gain_exit_vs_shuffled", above=0, reproduced=False,
          why="-.005 +.020 +.025 -.045 +.005 (mean .000, lower -.027): shuffled feedback in training does not hurt "
              "inference with true feedback; the revision skill is the base's, not learned from the histories"),
    Claim("10", "revision_gain_exit_vs_single", above=0, reproduced=False,
          why="-.050 +.030 +.060 -.045 +.030 (mean +.005, lower -.042): ExIt's policy gains +.062 from revising, "
              "one-step training's +.057; the noise of 200 chains is larger than the difference"),
    Claim("10", "acc_gain_webrl_vs_fixed", above=0, reproduced=False,
          why="+.008 +.020 -.025 +.010 -.002 (mean +.002, lower -.014): both .835 from base .730; a failed sum's "
              "one-digit neighbour is no harder than any sum (slips, not missing skills), the band keeps .87 of the "
              "generated tasks, and the KL (beta .05) barely binds in 16 steps"),
    Claim("10", "acc_gain_webrl_vs_shuffled", above=0, reproduced=False,
          why="+.010 +.018 -.017 +.005 +.003 (mean +.004, lower -.009): failures do not cluster on tasks here, so "
              "seeding from them or from any task gives the same pool"),
    # 28 Reward evolution (derl): a Meta-Optimizer (GRU over prefix tokens) writes reward expressions over five
    # primitives; each scored by an 8-step GRPO run of tiny on 2-digit subtraction. Measured at 99c0efe (seeds 0-4,
    # round 2: population 8, 3 iterations): last population's mean val acc derl .250, random .146, shuffled .144;
    # best-by-validation test acc derl .277, random .281, shuffled .274, outcome .289, hand .331, base .286;
    # docs/notes/28_reward_evolution.md
    Claim("28", "test_gain_derl_vs_random", above=0, reproduced=False,
          why="+.000 -.020 +.010 +.000 -.005 (mean -.003, lower -.013): the three meta arms share their first "
              "population and an 8-step inner run raises accuracy little with any reward, so the best of 24 is any "
              "harmless reward (correct, digits) and which one wins is decided by seeds"),
    Claim("28", "test_gain_derl_vs_outcome", above=0, reproduced=False,
          why="+.113 -.015 -.062 -.008 -.083 (mean -.011, lower -.083): outcome-only is harmless and gets 24 seeds; "
              "the validation winner is a selection on inner-run noise (sd .036 against a validation SE of .022)"),
    Claim("28", "test_gain_derl_vs_hand", above=0, reproduced=False,
          why="-.012 -.090 -.093 -.008 -.065 (mean -.053, lower -.093): the hand composite correct + .5 digits + "
              ".1 format is the best reward of the toy (test .331 vs base .286); the grammar can write its first "
              "two terms but few of 24 draws do, and the 8-step proxy hardly separates it from correct or digits"),
    Claim("28", "test_gain_derl_vs_shuffled", above=0, reproduced=False,
          why="+.000 +.020 +.000 +.000 +.000 (mean +.004, lower -.005): the best run is usually in the shared "
              "first population, so the two arms pick the same run"),
    Claim("28", "last_mean_gain_derl_vs_random", above=0),
    Claim("28", "last_mean_gain_derl_vs_shuffled", above=0),
    # 36 In-context RL (ReLIC): a transformer over 32-step trials of hidden-arm bandits (8 episodes x 4 pulls), PPO with
    # partial updates and a Sink-KV, at equal environment steps. Measured at b40757d (seeds 0-4): held-out reward per
    # pull ReLIC .941 (first episode .595, later half .994), full-trial .626, full with ReLIC's gradient steps .936,
    # no sink .943, GRU .865, Thompson .953; docs/notes/36_in_context_rl.md
    Claim("36", "relic_in_context_gain", above=0.1),
    Claim("36", "relic_regret_vs_thompson", below=0.05),
    Claim("36", "partial_vs_full", above=0),
    Claim("36", "partial_vs_full_matched", above=0, reproduced=False,
          why="+.011 +.006 -.014 +.003 +.016 (lower -.007): full-trial updates with 4x the epochs (ReLIC's gradient "
              "steps) match ReLIC; at a 32-step trial the gain of partial updates is the number of updates per "
              "sample, not their timing inside the trial"),
    Claim("36", "sink_vs_no_sink", above=0, reproduced=False,
          why="-.026 +.003 +.002 +.006 +.003 (lower -.015): the heads use the sink (weight .48 in the first episode, "
              ".06 later; sink_used_early holds) but a 32-step trial offers other 'nothing' keys (the reset token, "
              "the current step), so removing it costs no reward"),
    Claim("36", "sink_used_early", above=0),
    Claim("36", "relic_vs_gru", above=0),
    # 26 directed evolution (loongflow, guided-evolution): islands + MAP-Elites + credit-memory edits on a sandboxed
    # byte-program search, equal evaluations. Measured on 0cc6990 (seeds 0-4): oracle direction vs blind +.079
    # (lower +.040); coverage full vs greedy +.030 (lower +.014); docs/notes/26_directed_evolution.md
    Claim("26", "heldout_gain_oracle_vs_blind", above=0),
    Claim("26", "heldout_gain_full_vs_blind", above=0, reproduced=False,
          why="+.041 -.001 -.037 +.034 -.027 (mean +.002, lower -.031): direction pays (oracle +.079) but the learned "
              "credit puts .30 of its mass on the target ops vs .27 uniform: a per-edit gain count credits edits that "
              "raise a bit score by chance, not the instructions the hidden program contains"),
    Claim("26", "heldout_gain_full_vs_shuffled", above=0, reproduced=False,
          why="-.025 -.022 +.022 +.026 -.055 (mean -.011, lower -.043): the credit carries too little signal for "
              "shuffling it to cost anything (shuffled target-op mass .32 vs full .30)"),
    Claim("26", "heldout_gain_full_vs_greedy", above=0, reproduced=False,
          why="+.033 -.012 -.049 +.079 -.020 (mean +.006, lower -.042): on 3-instruction targets within 400 "
              "evaluations a (1+10) hill climber is as good as the islands; per-target noise dominates"),
    Claim("26", "coverage_gain_full_vs_greedy", above=0),
    # 25 tool evolution (yunjue): a tiny synthesizer writes tools in a grammar, run only in the sandbox; the merged
    # library vs per-task synthesis at equal synthesis calls, and the library shuffled across needs (the control).
    # Measured at 91ea715 (seeds 0-4): library vs per-task +.115 (lower +.062), FAR drop +.207 (lower +.081), EGL
    # decline +.099 (lower +.022), vs shuffled +.115 (lower +.062); docs/notes/25_tool_evolution.md
    Claim("25", "solve_gain_library_vs_per_task", above=0),
    Claim("25", "false_accept_drop_library", above=0),
    Claim("25", "egl_decline_library", above=0),
    Claim("25", "solve_gain_library_vs_shuffled", above=0),
]


def claims_of(notebook: str) -> list[Claim]:
    return [c for c in CLAIMS if c.notebook == notebook]


# ------------------------------------------------------------------------------------ the runs

def _code_cells(nb_json: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb_json["cells"] if c["cell_type"] == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def _reusable(run_dir: Path, seed: int, code: list[str]) -> dict | None:
    """results.json of a finished default workshop run of this seed and this code, else None."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
        if (info.get("status"), info.get("scale"), info.get("seed"), info.get("params") or {}) != \
                ("ok", "workshop", seed, {}):
            return None
        executed = json.loads((run_dir / Path(info["notebook"]).name).read_text())
        if _code_cells(executed) != code:
            return None
        return json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def reusable_results(notebook: str, effects_dir: Path) -> dict[int, dict]:
    """{seed: results.json} of the runs under ``effects_dir`` that qualify (newest first)."""
    from labkit.lab.notebooks import resolve

    nb = resolve(notebook)
    return runs_with_code(effects_dir, nb.path.name, _code_cells(json.loads(nb.path.read_text())))


def runs_with_code(root: Path, nb_name: str, code: list[str]) -> dict[int, dict]:
    """{seed: results.json} of the finished default workshop runs of `nb_name` under `root`
    whose code cells are `code` (newest first)."""
    found: dict[int, dict] = {}
    for run_json in sorted(root.glob("**/run.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        if run_json.parent.joinpath(nb_name).is_file():
            for seed in SEEDS:
                if seed not in found and (results := _reusable(run_json.parent, seed, code)) is not None:
                    found[seed] = results
    return found


def seed_results(notebook: str, effects_dir: Path) -> list[dict]:
    """results.json of each of SEEDS at workshop scale: reused from any run of this notebook
    under ``effects_dir`` that qualifies, the rest run into ``effects_dir/<NN>``."""
    from labkit.lab.notebooks import resolve
    from labkit.lab.runs import execute_seeds

    nb = resolve(notebook)
    found = reusable_results(notebook, effects_dir)
    missing = [s for s in SEEDS if s not in found]
    if missing:
        group = execute_seeds(nb, scale="workshop", seeds=missing, out_dir=effects_dir / notebook, workers=2)
        for r in group.runs:
            assert r.ok, f"{notebook} seed {r.spec.seed} failed at workshop scale: {r.error} ({r.run_dir})"
            found[r.spec.seed] = json.loads((r.run_dir / "results.json").read_text())
    return [found[s] for s in SEEDS]


@pytest.fixture(scope="module")
def effects_dir(tmp_path_factory) -> Path:
    env = os.environ.get("LABKIT_EFFECTS_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("effects")


_CACHE: dict[str, list[dict]] = {}


def results_of(notebook: str, effects_dir: Path) -> list[dict]:
    if notebook not in _CACHE:
        _CACHE[notebook] = seed_results(notebook, effects_dir)
    return _CACHE[notebook]


# ------------------------------------------------------------------------------- the statistics

def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, lower, upper): the one-sided CONFIDENCE bounds of the mean (Student t)."""
    from labkit.core.stats import mean_bounds

    return mean_bounds(values)


def holds(claim: Claim, values: list[float]) -> tuple[bool, str]:
    mean, lower, upper = interval(values)
    ok = (claim.above is None or lower > claim.above) and (claim.below is None or upper < claim.below)
    bound = " and ".join(s for s in (f"> {claim.above:+.3g}" if claim.above is not None else "",
                                     f"< {claim.below:+.3g}" if claim.below is not None else "") if s)
    per_seed = ", ".join(f"{v:+.3f}" for v in values)
    return ok, (f"{claim.id}: mean {mean:+.3f}, {CONFIDENCE:.0%} bounds [{lower:+.3f}, {upper:+.3f}], "
                f"claimed {bound}; seeds {per_seed}")


def test_interval_is_the_student_t_bound():
    mean, lower, upper = interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert lower == pytest.approx(3.0 - 2.1318 * math.sqrt(2.5) / math.sqrt(5), abs=1e-3)
    assert upper - mean == pytest.approx(mean - lower)


def test_the_t_table_is_scipys():
    from scipy.stats import t

    from labkit.core.stats import Z95, t95

    assert CONFIDENCE == 0.95
    for df in (*range(1, 41), 100, 1000):
        assert t95(df) == pytest.approx(t.ppf(0.95, df), rel=1e-4)
    assert Z95 == pytest.approx(1.64485, abs=1e-4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="degrees of freedom must be an integer >= 1"):
            t95(bad)


def test_holds_needs_the_interval_not_only_the_mean():
    claim = Claim("xx", "gap", above=0.0)
    assert holds(claim, [0.10, 0.12, 0.11, 0.09, 0.13])[0]
    assert not holds(claim, [0.30, -0.20, 0.25, -0.15, 0.10])[0]  # mean +0.06, interval spans 0
    assert not holds(Claim("xx", "r", below=0.5), [0.4, 0.6, 0.45, 0.55, 0.5])[0]


def test_claims_are_unique_and_bounded():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids)), "a claim is listed twice"
    for c in CLAIMS:
        assert c.above is not None or c.below is not None, c.id
        assert c.reproduced or c.why, f"{c.id}: a claim not reproduced needs its diagnosis"


def test_the_table_says_which_claims_have_no_runs(tmp_path):
    table = effects_table(tmp_path)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == len(CLAIMS)
    assert all("not measured with the current code (0 of 5 seeds found)" in row for row in rows)


def test_the_table_keeps_earlier_rows_only_for_notebooks_without_runs(tmp_path):
    claim = CLAIMS[0]
    earlier = (f"| {claim.notebook} | `{claim.name}` | > +0 | +0.500 | [+0.400, +0.600] | "
               "+0.5 +0.5 +0.5 +0.5 +0.5 | holds |\n| 99 | `gone` | > +0 | +1.000 | [+1, +1] | 1 1 1 1 1 | holds |\n")
    rows = [line for line in effects_table(tmp_path, earlier).splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == len(CLAIMS), "a claim that no longer exists must not come back"
    mine = [r for r in rows if f"`{claim.name}`" in r and r.startswith(f"| {claim.notebook} ")]
    assert mine == [earlier.splitlines()[0][:-2] + f" ({KEPT}) |"]
    again = effects_table(tmp_path, "\n".join(rows))
    assert again.count(KEPT) == 1, "keeping a kept row twice must not stack the mark"
    assert sum("not measured" in r for r in rows) == len(CLAIMS) - 1


@pytest.mark.slow
@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_effect_over_seeds(claim, effects_dir, request):
    if not claim.reproduced:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"not reproduced: {claim.why}"))
    runs = results_of(claim.notebook, effects_dir)
    missing = [s for s, r in zip(SEEDS, runs) if claim.name not in r]
    assert not missing, f"{claim.id}: seeds {missing} did not record {claim.name!r}"
    ok, report = holds(claim, [float(r[claim.name]) for r in runs])
    print(report)
    assert ok, report


# ------------------------------------------------------------------------------- the table

KEPT = "kept from the previous table; not re-checked against today's code"


def previous_rows(table: str) -> dict[str, str]:
    """{claim id: its row} of an earlier docs/effects.md whose row carries figures."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[1].startswith("`") and cells[3]:
            rows[f"{cells[0]}-{cells[1].strip('`')}"] = line
    return rows


def effects_table(effects_dir: Path, previous: str = "") -> str:
    """docs/effects.md: every claim's five-seed figures, read from the runs under
    ``effects_dir`` that match today's notebooks. A notebook with no such run keeps its rows
    from ``previous`` (an earlier table), marked as kept; without them, it says it was not measured."""
    kept = previous_rows(previous)
    lines = ["# The notebooks' claims over five seeds",
             "",
             "Generated by `LABKIT_EFFECTS_DIR=DIR python tests/test_effects.py --table docs/effects.md` from "
             "workshop runs of seeds " + ", ".join(map(str, SEEDS)) + " whose code cells equal the notebooks' "
             "(`pytest -m slow tests/test_effects.py` asserts the same claims). A claim holds when the "
             f"one-sided {CONFIDENCE:.0%} Student-t bound of its mean clears the bound; a claim the toy does not "
             "reproduce carries its diagnosis. A notebook with no such run keeps its rows from the previous table, "
             "marked as kept. The notebooks' Notes point here instead of copying numbers.",
             "",
             "| nb | claim | bound | mean | 95% bounds | seeds | verdict |",
             "|---|---|---|---|---|---|---|"]
    whys = []
    for notebook in sorted({c.notebook for c in CLAIMS}):
        found = reusable_results(notebook, effects_dir)
        for claim in claims_of(notebook):
            bound = " and ".join(x for x in (f"> {claim.above:+.3g}" if claim.above is not None else "",
                                             f"< {claim.below:+.3g}" if claim.below is not None else "") if x)
            values = [found[s].get(claim.name) for s in SEEDS if s in found]
            if not found and claim.id in kept:
                row = kept[claim.id].rstrip().rstrip("|").rstrip()
                row = row if row.endswith(f"({KEPT})") else f"{row} ({KEPT})"
                lines.append(f"{row} |")
                if not claim.reproduced:
                    whys.append(f"- **{claim.id}**: {claim.why}")
                continue
            if len(values) < len(SEEDS) or any(v is None for v in values):
                lines.append(f"| {notebook} | `{claim.name}` | {bound} | | | | not measured with the current code "
                             f"({len(found)} of {len(SEEDS)} seeds found) |")
                continue
            values = [float(v) for v in values]
            ok, _ = holds(claim, values)
            mean, lower, upper = interval(values)
            verdict = "holds" if ok else ("not reproduced" if not claim.reproduced else "**FAILS**")
            if not claim.reproduced:
                whys.append(f"- **{claim.id}**: {claim.why}")
            lines.append(f"| {notebook} | `{claim.name}` | {bound} | {mean:+.3f} | [{lower:+.3f}, {upper:+.3f}] | "
                         + " ".join(f"{v:+.3f}" for v in values) + f" | {verdict} |")
    if whys:
        lines += ["", "## Claims not reproduced, and why", ""] + whys
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Write the five-seed table of the notebooks' claims.")
    ap.add_argument("--table", metavar="PATH", required=True, help="where to write it (- for stdout)")
    ap.add_argument("--dir", default=os.environ.get("LABKIT_EFFECTS_DIR"),
                    help="the runs (default $LABKIT_EFFECTS_DIR)")
    args = ap.parse_args()
    if not args.dir:
        raise SystemExit("give the runs' directory: --dir DIR or LABKIT_EFFECTS_DIR")
    earlier = Path(args.table) if args.table != "-" else None
    text = effects_table(Path(args.dir), earlier.read_text(encoding="utf-8") if earlier and earlier.is_file() else "")
    if args.table == "-":
        print(text, end="")
    else:
        Path(args.table).write_text(text, encoding="utf-8")
