"""``imstream live``: a faust-streaming app of live per-minute views (pipeline/live/app.py)."""
