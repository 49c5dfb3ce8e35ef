"""ROS-free algorithms: detection post-processing, depth masking, the face ensemble, voice conversion, sync.

Nothing under this package may import rclpy or any ROS message type.
"""
