"""A CARLA -> ROS 2 bridge for anon_ros: an ego vehicle with RGB, depth and semantic cameras, walkers, /clock.

``carla_bridge.conversions`` (pure NumPy: CARLA raw buffers -> arrays, intrinsics from the field of view) imports
neither carla nor rclpy; ``carla_bridge.session`` drives a CARLA client; ``carla_bridge.node`` is the ROS node.
"""
