"""Checkpoints: weights saved by jobs or uploaded by users, always safetensors."""
