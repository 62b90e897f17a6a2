"""Benchmarks: every figure the project quotes comes from a script here, never from a timed test.

Each script prints a small table and writes its numbers to `bench/results/<name>.json`.
"""
