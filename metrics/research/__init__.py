"""Research code: how this project trained its own SSFD encoder (`dfd-ssfd-local`) and the
checks behind its model card. Nothing that computes a metric imports it; `python -m metrics
train-ssfd` and `evaluate-ssfd` are its commands (ssfd_commands.py).
"""
