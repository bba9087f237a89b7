"""The rule-based recommender: measured profile and domain similarity to a seed config."""
