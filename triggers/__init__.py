"""panen.triggers — product plugins, one module per product family (entry-point group ``panen.triggers``)."""
