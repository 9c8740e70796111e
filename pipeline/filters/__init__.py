"""Heuristic quality filters: the ``filter`` stage, its rule table, statistics and definitions.

Where things are:

* ``stage.py``: the stage (``apply_filters``) and what other code imports (``compute_stats``,
  ``rule_table``, ``rule_failures``, ``FilterConfig``, ``RULE_NAMES``, ``STAT_COLUMNS``, ``FAMILIES``);
* ``rules.py``: the rule table, every statistic and every rule declared once (names, reasons,
  evaluation order, statistic dtypes); ``config.py``: ``FilterConfig``, the thresholds the rules read;
* ``compute.py``: which statistics run on which rows, in which order; the statistics by family:
  ``prose.py`` (Gopher quality, line/paragraph repetition), ``repetition.py`` (Gopher n-grams),
  ``lines.py`` (C4, RefinedWeb, FineWeb), ``book.py``, ``code.py``;
* ``definitions.py``: what a word, a line, a repeat is (our reading of the papers);
  ``datatrove.py``: datatrove 0.10's reading (``definitions="datatrove"``), with
  ``datatrove_words.py``, its spaCy tokenizer as regexes;
* ``blocklist.py``: the URL / domain blocklist, applied as the first rule.
"""
