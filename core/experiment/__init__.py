"""The experiment domain: specs, presets, studies, the result layout and its diagnosis.

No infrastructure: imports nothing else of `core`, and neither TensorFlow, matplotlib nor Redis.
"""
