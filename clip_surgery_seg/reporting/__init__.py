"""Reporting and regression tracking: the methods table, comparisons, the history and reproduction.

* ``history``: the history file (one row per method and dataset per recorded run) and its selection syntax;
* ``records``: one result (``metrics.json``, run folder or history row) as a ``ResultRecord``;
* ``paper``: the published numbers (``results/paper.csv``) and the methods x datasets table, ours
  beside the published numbers;
* ``compare``: what moved between two results, and whether it is a regression;
* ``plots``: matplotlib charts (Agg backend);
* ``reproduce``: evaluate every method on every dataset under one protocol into one run folder.

Nothing heavy is imported here.
"""
