"""Training stages: supervised actor (``supervised``); reward model and RL arrive with their issues."""
