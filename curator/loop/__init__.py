"""The loop: rounds, the demo and the round report."""
