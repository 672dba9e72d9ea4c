"""Models: audio encoders, the FaceFormer actor (later: the reward model)."""
