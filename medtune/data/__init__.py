"""Benchmark data: one record type, loaders, validation, splits and prompts."""

from medtune.data.benchmarks import BENCHMARKS
from medtune.data.schema import LETTERS, MCQItem
from medtune.data.sources import LoadOptions, LoadReport, load_benchmark

__all__ = ["BENCHMARKS", "LETTERS", "MCQItem", "LoadOptions", "LoadReport", "load_benchmark"]
