"""Setup for a2bis-mm: A2B-IS instance segmentation on MMDetection 3 / MMRotate 1."""
from setuptools import find_packages, setup


def parse_requirements(path: str) -> list:
    """Read one requirement per line, skipping comments and blanks."""
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


setup(
    name='a2bis-mm',
    version='0.1.0',
    description='A2B-IS: skeleton-guided instance segmentation for microscopy, '
    'on MMDetection 3 / MMRotate 1',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    include_package_data=True,
    install_requires=[
        'mmcv>=2.0.0,<2.2.0',
        'mmengine>=0.10.0,<1.0.0',
        'mmdet>=3.3.0,<3.4.0',
        'mmrotate-dev>=1.0.1',
        'pycocotools>=2.0.8',
    ] + parse_requirements('requirements/runtime.txt'),
    extras_require={'tests': parse_requirements('requirements/tests.txt')},
    zip_safe=False,
)
