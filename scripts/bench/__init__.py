"""Benchmarks beside the CPU peers, and accuracy measurements."""
