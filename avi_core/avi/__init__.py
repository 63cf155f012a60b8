"""Attribute Vector Integration (Wang et al., Algorithm 1): the attribute head, its loss and training, the
merge, head files and head descriptions."""
