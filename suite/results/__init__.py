"""The results store (results.json files) and the metrics files DVC reads."""
