r"""Verifiable task worlds: a prompt, a reference answer, a category, a difficulty, a verifier.

    from labkit.core.tasks import make_tasks, train_seed, verify
    task = make_tasks("add", 2, n=1, seed=train_seed(0))[0]   # Task(prompt='57+68=', answer='125', ...)
    verify(task, "125").reward                         # 1.0

Worlds and categories (difficulty in brackets):
    arithmetic  add, sub, mul [digits per operand 1..8]   "12+345="  -> "357"
                carry [carries 0..4 in a 4-digit + 4-digit sum] "4567+1234=" -> "5801"
    countdown   countdown [how many numbers 2..5]          "3 5 7>22=" -> "3*5+7"
    digits      sort, reverse [string length 2..8]        "s:5813=" -> "1358", "r:5813=" -> "3185"

Verifier rules. Rewards are binary (GRPO and the bandit analyses assume it); the completion is
the decoded text without EOS/padding; "right" means equal to the task's reference answer
(countdown: any valid expression reaching the target).

    completion                             reward  format_ok  rule
    -------------------------------------  ------  ---------  ---------------------------------
    "" or only whitespace                  0       False      nothing to read
    over 64 chars (e.g. 10**6 of them)     0       False      rejected unscanned, O(1)
    " 12\n" (space/tab/CR/LF around)       as "12" as "12"    surrounding ASCII whitespace is
                                                              stripped
    "1 2", "12\n3" (whitespace inside)     0       False      only surrounding is stripped
    "１２", "١٢", "−12" (non-ASCII)          0       False      only printable ASCII is read
    "12abc", "1e9", "+12", "0x1f", "12.0"  0       False      not a canonical integer
    "007" (answer 7), "-0"                 0       False      canonical form only ("0" is fine)
    "2+2" (arithmetic)                     0       False      an expression is not an answer
    "-12" (answer -12)                     1       True       negatives use the ASCII '-'
    a wrong integer / digit string         0       True       right shape, wrong value
    "0123" (sort/reverse)                  1 or 0  True       digit strings keep leading zeros
    countdown, prompt "3 5 7>22=":
    "3*5+7"                                1       True       * before + and -, left to right
    "7+5*3" (any valid expression)         1       True       not only the reference answer
    "3*5" (misses the target)              0       True       well formed, wrong value
    "2*11", "5*5-3" (2, 11 not given;      0       True       numbers from the prompt, each at
      5 used twice)                                           most as often as given
    "3 * 5", "(3+5)", "-3+5", "07+1",      0       False      no inner spaces, parentheses,
      "3+*5", "22" (one number)                               unary minus or leading zeros;
                                                              at least two numbers
"""
from .arms import Arm, format_arm, parse_arms
from .base import MAX_ANSWER_CHARS, MAX_COMPLETION_CHARS, MAX_PROMPT_CHARS, Task, Verdict
from .eval_sets import EVAL_SEED, EVAL_SETS, TRAIN_SEED_MIN, eval_prompts, load_eval_set, train_seed
from .registry import CATEGORIES, DIFFICULTIES, WORLDS, make_tasks, sample_task, verify

__all__ = ["Task", "Verdict", "make_tasks", "sample_task", "verify", "CATEGORIES",
           "DIFFICULTIES", "WORLDS", "load_eval_set", "eval_prompts", "EVAL_SETS", "EVAL_SEED",
           "TRAIN_SEED_MIN", "train_seed", "Arm", "parse_arms", "format_arm", "MAX_PROMPT_CHARS", "MAX_ANSWER_CHARS", "MAX_COMPLETION_CHARS"]
