"""Text and files: the tokenizer (text.py), rated and unrated files read with every bad row named
(data.py), and predictions written as CSV, JSON lines or Parquet (writers.py).

Imports nothing of the package above the settings.
"""
