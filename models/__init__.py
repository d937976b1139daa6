"""The model catalog: configs that let single-file checkpoints load offline."""
