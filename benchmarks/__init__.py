"""The harness: step-time and accuracy benchmarks, run folders, and the report built from saved JSON."""
