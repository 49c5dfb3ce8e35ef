"""Thin rclpy nodes: convert messages, call ``anon_ros.core``, publish."""
