"""Helpers shared by the tests and benchmarks: DDS probes, ROS graph helpers, audio servers."""
