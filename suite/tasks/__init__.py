"""Task families, one module each (suite/protocol/components.py's TaskFamily): each turns a seeded generator into
batches of few-shot tasks. `base` holds what they share; `point_navigation` MAML's 2D navigation environment
(reinforcement learning)."""
SUPPORT = ("base", "point_navigation")
