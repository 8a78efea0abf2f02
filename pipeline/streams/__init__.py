"""faust-streaming for stream consumers: typed records of imstream's topics, their
codecs, and an app that reads only committed records (docs/stream-consumers.md)."""
