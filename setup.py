from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open('beitlab/version.py') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='beitlab',
    version=read_version(),
    description='BEiT-style masked image modeling on the OpenMMLab stack',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools', 'projects')),
    install_requires=[
        'torch>=2.5',
        'mmengine>=0.10.0',
        'mmcv>=2.0.0,<2.2.0',
        'numpy',
        'scipy',
        'pillow',
        'tqdm',
        'safetensors>=0.4',  # .safetensors checkpoints (Hugging Face, timm)
    ],
    extras_require={
        # the suite also covers the TensorBoard backend, the ONNX export and the Hugging Face
        # checkpoint layout (against the transformers BEiT models)
        'tests': ['pytest>=7', 'pytest-timeout', 'scikit-image', 'ruff==0.17.5',
                  'tensorboard==2.21.0', 'onnx==1.23.2', 'onnxruntime==1.32.0',
                  'transformers==5.24.0'],
        'tensorboard': ['tensorboard>=2.14'],
        'onnx': ['onnx>=1.15', 'onnxruntime>=1.17'],
        'downstream': ['mmdet==3.3.0', 'mmsegmentation==1.2.2', 'pycocotools', 'ftfy', 'regex'],
    },
    license='Apache-2.0',
)
