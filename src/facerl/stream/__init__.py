"""Live audio -> animation frames: the streaming Animator (and `facerl serve`, its WebSocket server)."""

from facerl.stream.animator import Animator, Frame

__all__ = ["Animator", "Frame"]
