"""A small visual world and a tiny vision-language model on labkit's substrate.

`world`: scenes of coloured squares rendered as RGB tensors, questions with verifiable answers, a
language shortcut in the training mix and a counter-bias set where it is wrong. `model`: a patch
encoder and projector feeding the tiny Llama as a prefix of input embeddings (`TinyVLM`,
save_pretrained/from_pretrained). `rollout`: sampling and log-probs for image-prefixed prompts.
`coldstart`: the supervised cold start that makes the shipped `tiny-vlm` checkpoints.
Notebook 12 (Vision-SR1) explains the mechanism built on them.
"""
