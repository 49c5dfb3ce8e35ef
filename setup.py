"""ament_python package definition of anon_ros (also installable with plain pip into a virtualenv)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'anon_ros'

# Executables that `ros2 run anon_ros <name>` finds under lib/anon_ros; `anon-ros` is the user-facing CLI.
NODES: dict[str, str] = {
    'microphone': 'anon_ros.nodes.microphone:main',
    'camera_source': 'anon_ros.nodes.camera_source:main',
    'synthetic_source': 'anon_ros.nodes.synthetic_source:main',
    'carla_bridge': 'carla_bridge.node:main',
    'face_anonymizer': 'anon_ros.nodes.face_anonymizer:main',
    'voice_anonymizer': 'anon_ros.nodes.voice_anonymizer:main',
    'av_sync': 'anon_ros.nodes.av_sync:main',
    'recorder': 'anon_ros.nodes.recorder:main',
}

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=['anon_ros', 'anon_ros.*', 'carla_bridge', 'carla_bridge.*']),
    package_data={'anon_ros': ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='anon_ros developers',
    maintainer_email='anon-ros@example.org',
    description='Real-time anonymization of people (faces, voice) in ROS 2 sensor streams.',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            'anon-ros = anon_ros.cli:main',
            *(f'{name} = {target}' for name, target in NODES.items()),
        ],
    },
)
