"""panen.datasets — readers for real formats and the deterministic synthetic demo region."""
