"""Turn a node graph (``config/<name>.graph.yaml``) into a launch description: the body of every launch file.

launch and launch_ros are imported inside the function: they exist on full ROS 2 installs only, and importing this
module must not need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anon_ros.graph import load_graph


def graph_launch_description(graph_file: str) -> Any:
    """A LaunchDescription that starts every node of ``graph_file`` (in share/anon_ros/config) with its parameter
    file (overridable with the ``params`` launch argument) and remappings, exactly as ``anon-ros run`` does."""
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    graph = load_graph(Path(get_package_share_directory('anon_ros')) / 'config' / graph_file)
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
