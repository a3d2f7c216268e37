"""Loss terms of the methods: the robust cross-entropy, the grid and dense Potts relaxations."""
