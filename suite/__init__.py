"""suite: a declarative benchmark-and-reproduction suite for gradient-based meta-learning."""
