"""What the training suites (and the deploy and fault suites that train) share besides fixtures."""

# Parameters that make a run of the tiny model short and its LoRA strong enough to change output.
QUICK = {"steps": 3, "rank": 4, "alpha": 4, "learning_rate": 0.05, "resolution": 64, "seed": 7}
