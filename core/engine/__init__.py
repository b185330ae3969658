"""The training engine: the only package that loads TensorFlow and Keras.

It may import `core.experiment` and `core.datasets`; import it only where training runs
(a worker's pool process, `gradwatch run`), never in a process that forks.
"""
