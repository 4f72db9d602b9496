"""A demo PACER built with the SDK: the dataset pipeline, user/proposal sync and investigation ops.

`python -m pacer.demo.run` runs every consumer; `python -m pacer.demo.traffic --rate 50` feeds
them realistic input messages. Work is simulated (a few ms) and about 10 % of messages fail the
way real PACER messages fail.
"""
