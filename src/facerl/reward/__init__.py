"""The reward model: a speech-mesh sync backbone (SpeechMeshTransformer) and a lip / real / value score head."""
