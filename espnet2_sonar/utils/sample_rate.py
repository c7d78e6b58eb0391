"""SAMPLE_RATE: the one audio rate of the toolkit (every model, teacher and data stage reads 16 kHz)."""

SAMPLE_RATE = 16000
"""Samples per second of every waveform the toolkit reads, writes or feeds a model."""
