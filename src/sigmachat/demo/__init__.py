"""Demo data: the original product's demo users and portfolios, and their generated prices."""
