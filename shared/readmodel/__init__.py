"""What the stores hold, read for people: plain data (dicts of str, int, float, None), no rendering.

- :mod:`shared.readmodel.status`  watermarks, lag, dead letters, compaction runs and the leaderboard, read
  by ``streamduck status`` and the dashboard

Everything here only reads: a store that cannot answer is reported in the data (``error``), not raised.
"""
