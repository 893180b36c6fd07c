"""The synthetic shapes world, the demo model's training and its quality benchmark."""
