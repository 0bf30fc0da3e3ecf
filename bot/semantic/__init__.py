"""The embedded semantic model (optional extra ``bugbar[semantic]``): I/O and numpy live here.

``bot/decide/semantic.py`` holds the pure combiner that merges its class probabilities with the
rules' decision; this package loads the embedding weights, reads the training examples (shipped
and local), trains the linear head and scores issues.
"""
