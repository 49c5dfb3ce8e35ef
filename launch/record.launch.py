"""Recording the anonymized topics of a running graph (demo, carla or sensors) into a rosbag2 bag.

The node graph (executables, names, remappings) is config/record.graph.yaml, the one source of truth shared with
`anon-ros run config/record.yaml` (anon_ros.graph); parameters are config/record.yaml. This file only loads them.
"""

from anon_ros.launch_graph import graph_launch_description

GRAPH = 'record.graph.yaml'


def generate_launch_description():  # noqa: ANN201 - launch's entry point; returns a LaunchDescription
    return graph_launch_description(GRAPH)
