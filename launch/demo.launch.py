"""Synthetic source + anonymization: the embedded demo (no CARLA, no camera needed).

The node graph (executables, names, remappings) is config/demo.graph.yaml, the one source of truth shared with
`anon-ros run config/demo.yaml` (anon_ros.graph); parameters are config/demo.yaml. This file only loads them.
"""

from anon_ros.launch_graph import graph_launch_description

GRAPH = 'demo.graph.yaml'


def generate_launch_description():  # noqa: ANN201 - launch's entry point; returns a LaunchDescription
    return graph_launch_description(GRAPH)
