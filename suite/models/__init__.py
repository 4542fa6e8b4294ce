"""Model kinds, one module each (suite/protocol/components.py's ModelKind): a parameter layout evaluated
functionally. `functional` (FunctionalModel) and `layers` (the torch modules the kinds build) are shared."""
SUPPORT = ("functional", "layers")
