"""Animator outputs: ARKit blendshape curves and the files engines and DCC tools read."""
