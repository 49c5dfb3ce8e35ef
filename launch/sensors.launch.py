"""Real sensors without ROS drivers (webcam or video file, sound card) + anonymization.

The node graph (executables, names, remappings) is config/sensors.graph.yaml, the one source of truth shared with
`anon-ros run config/sensors.yaml` (anon_ros.graph); parameters are config/sensors.yaml. This file only loads them.
"""

from anon_ros.launch_graph import graph_launch_description

GRAPH = 'sensors.graph.yaml'


def generate_launch_description():  # noqa: ANN201 - launch's entry point; returns a LaunchDescription
    return graph_launch_description(GRAPH)
