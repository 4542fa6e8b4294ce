"""Task families, one module each (suite/protocol/components.py's TaskFamily): each turns a seeded generator into
batches of few-shot tasks. `base` holds what they share."""
SUPPORT = ("base",)
