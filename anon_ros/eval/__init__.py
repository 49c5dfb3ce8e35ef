"""Evaluation as a feature: privacy, utility and speed reports for the face and voice anonymizers, with peers.

``anon-ros eval faces``, ``anon-ros eval voice`` and ``anon-ros bench`` write ``results.json``, ``report.md`` and
matplotlib PNGs into an output folder. The modules here never import rclpy (the DDS part of the speed bench runs the
probe in child processes).
"""
