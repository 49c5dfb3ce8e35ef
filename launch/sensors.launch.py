"""Real sensors + anonymization. Loads config/sensors.yaml and only remaps topics; all settings live in the YAML."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = str(Path(get_package_share_directory('anon_ros')) / 'config' / 'sensors.yaml')
    params = LaunchConfiguration('params')
    return LaunchDescription([
        DeclareLaunchArgument('params', default_value=default_params, description='parameter YAML for all nodes'),
        Node(
            package='anon_ros', executable='microphone', name='microphone', parameters=[params],
            remappings=[('audio', 'mic/audio_raw')],
        ),
    ])
