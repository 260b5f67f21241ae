"""Core War: a Redcode parser, a two-warrior MARS and classic warriors (notebook 20, DRQ).

    parse(text) -> Warrior                       # ICWS'94 subset; ValueError naming the bad line
    battle(w1, w2, rounds, seed, settings) -> BattleResult(wins, losses, ties, score, spawned, coverage)
    battle_many(jobs, settings, workers) -> [BattleResult]   # same results for any worker count
    TINY_HILL = Settings(core=800, cycles=8000, processes=800, length=20, min_distance=20)
    TRAIN, HELDOUT, FAMILIES, family_source       # classic warriors: two disjoint sets

A warrior is data interpreted by the MARS; nothing here executes it as Python.
"""
from labkit.core.corewar.mars import TINY_HILL, BattleResult, RoundResult, Settings, battle, run_round
from labkit.core.corewar.pool import battle_many
from labkit.core.corewar.redcode import Instruction, Warrior, parse
from labkit.core.corewar.warriors import FAMILIES, HELDOUT, TRAIN, family_source, warrior

__all__ = ["parse", "Warrior", "Instruction", "Settings", "TINY_HILL", "battle", "run_round",
           "BattleResult", "RoundResult", "battle_many", "TRAIN", "HELDOUT", "FAMILIES",
           "family_source", "warrior"]
