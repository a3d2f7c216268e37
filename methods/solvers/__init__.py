"""Solvers the methods use: α-expansion, the 8-grid Potts model, the permutohedral bilateral filter, Grid-TR's stage A."""
