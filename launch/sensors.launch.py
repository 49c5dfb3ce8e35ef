"""Real sensors without ROS drivers (webcam or video file, sound card) + anonymization.

The node graph (executables, names, remappings) is config/sensors.graph.yaml, the one source of truth shared with
`anon-ros run config/sensors.yaml` (anon_ros.graph); parameters are config/sensors.yaml. This file only loads them.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from anon_ros.graph import load_graph
from launch import LaunchDescription

GRAPH = 'sensors.graph.yaml'


def generate_launch_description() -> LaunchDescription:
    graph = load_graph(Path(get_package_share_directory('anon_ros')) / 'config' / GRAPH)
    params = LaunchConfiguration('params')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params', default_value=str(graph.parameters), description='parameter YAML for all nodes',
        ),
        *(
            Node(
                package=node.package,
                executable=node.executable,
                name=node.name,
                namespace=node.namespace or None,
                parameters=[params],
                remappings=list(node.remappings),
            )
            for node in graph.nodes
        ),
    ])
