"""Python ports of the published reference code, and parity checks at SD 1.5 size."""
