"""An RGB-D camera with its own ROS 2 driver (realsense2_camera) + anonymization, by remapping its topics.

The node graph (executables, names, remappings) is config/realsense.graph.yaml, the one source of truth shared with
`anon-ros run config/realsense.yaml` (anon_ros.graph); parameters are config/realsense.yaml. This file only loads them.
"""

from anon_ros.launch_graph import graph_launch_description

GRAPH = 'realsense.graph.yaml'


def generate_launch_description():  # noqa: ANN201 - launch's entry point; returns a LaunchDescription
    return graph_launch_description(GRAPH)
