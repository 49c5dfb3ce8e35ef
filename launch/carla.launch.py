"""CARLA simulator bridge + anonymization (needs a running CARLA 0.9.16 server and the carla package).

The node graph (executables, names, remappings) is config/carla.graph.yaml, the one source of truth shared with
`anon-ros run config/carla.yaml` (anon_ros.graph); parameters are config/carla.yaml. This file only loads them.
"""

from anon_ros.launch_graph import graph_launch_description

GRAPH = 'carla.graph.yaml'


def generate_launch_description():  # noqa: ANN201 - launch's entry point; returns a LaunchDescription
    return graph_launch_description(GRAPH)
