"""Rules: the catalogue (catalogue.py) and the detectors, one module per family."""
