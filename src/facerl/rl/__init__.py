"""RL fine-tuning of the actor against the frozen reward (see facerl.rl.train)."""
