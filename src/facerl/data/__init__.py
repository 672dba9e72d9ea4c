"""Datasets in the VOCASET layout: the embedded synthetic corpus, external speech, real VOCASET, the reader."""
