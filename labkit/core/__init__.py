"""The substrate every notebook stands on: tasks and verifiers, the policy and its tokenizer, one
sampling loop, the GRPO step and its optimise loop, the evaluator, parameter checks and stats.

Nothing here imports from labkit.lab (the notebook machinery), labkit.bases (how the shipped
checkpoints were made) or labkit.nb (one notebook's mechanism).
"""
