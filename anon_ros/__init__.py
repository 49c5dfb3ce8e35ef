"""anon_ros: real-time anonymization of people in ROS 2 sensor streams.

``anon_ros.core`` holds the algorithms and never imports rclpy; ``anon_ros.nodes`` holds the thin ROS 2 nodes.
"""

__version__ = '0.1.0'
