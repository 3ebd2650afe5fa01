"""Analysis models (detectors, events, deliveries) arrive with the analysis engine."""
