"""How the base checkpoints shipped in data/models were made: `labkit pretrain`, its data
mixtures, and the card each checkpoint carries. Uses labkit.core only."""
